"""Publish hooks: what other parts of the hub do after a version is published or rolled back.

The write path (``hub.publish``) knows nothing of who reads the versions it switches; it
emits a ``PublishEvent`` and the listeners registered here react. The serving side
registers its listener (``hub.serve.snapshots.SERVING_HOOK``: the API's read-only
serving files beside an embedded warehouse) through the ``exchange_hub.publish_hooks``
entry point of ``pyproject.toml``, so a CLI-only ``hub publish``, an Airflow task and an
embedded run all update the serving files without importing ``hub.serve`` themselves.
``register`` adds a listener in process (by name; it replaces one of the same name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hub.catalog.models import Resource
    from hub.settings import Settings
    from hub.warehouse import Warehouse

PUBLISH_HOOKS_ENTRY_POINT = "exchange_hub.publish_hooks"

EventKind = Literal["published", "rolled_back"]


@dataclass(frozen=True)
class PublishEvent:
    """A resource's current version changed (or was confirmed unchanged) in the warehouse.

    ``result`` is the ``hub.publish.PublishResult`` being reported; a listener may append
    to its ``notes``.
    """

    kind: EventKind
    warehouse: Warehouse
    settings: Settings
    resource: Resource
    result: Any


@dataclass(frozen=True)
class PublishHook:
    """A named listener; ``failure`` begins the note publish adds when ``run`` raises."""

    name: str
    run: Callable[[PublishEvent], None]
    failure: str


_registered: dict[str, PublishHook] = {}


def register(hook: PublishHook) -> None:
    """Add ``hook`` for the rest of the process (replacing one of the same name)."""
    _registered[hook.name] = hook


def unregister(name: str) -> None:
    """Remove the in-process hook ``name`` (an entry point's hook stays)."""
    _registered.pop(name, None)


@cache
def _installed() -> tuple[PublishHook, ...]:
    found = []
    for entry in sorted(entry_points(group=PUBLISH_HOOKS_ENTRY_POINT), key=lambda e: e.name):
        hook = entry.load()
        if not isinstance(hook, PublishHook):
            raise TypeError(
                f"entry point {entry.name!r} of {PUBLISH_HOOKS_ENTRY_POINT} is not a PublishHook"
            )
        found.append(hook)
    return tuple(found)


def hooks() -> list[PublishHook]:
    """The installed hooks (entry points, by name) then the in-process ones, one per name."""
    chosen = {hook.name: hook for hook in _installed()}
    chosen.update(_registered)
    return list(chosen.values())


def emit(event: PublishEvent) -> None:
    """Run every hook on ``event``; a hook that raises is noted on ``event.result`` (the
    published version stays, and the next publish or rollback runs the hook again)."""
    for hook in hooks():
        try:
            hook.run(event)
        except Exception as exc:  # a reader's files failing must not undo the publish
            event.result.notes.append(f"{hook.failure}: {type(exc).__name__}: {exc}")
