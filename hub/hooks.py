"""Publish hooks: what other parts of the hub do after a version is published or rolled back.

The write path (``hub.publish``) knows nothing of who reads the versions it switches; it
emits one ``PublishEvent`` per published or rolled-back resource and the listeners
registered here react. Two are installed through the ``exchange_hub.publish_hooks``
entry point of ``pyproject.toml``: the serving side's (``hub.serve.snapshots.SERVING_HOOK``:
the API's read-only serving files beside an embedded warehouse) and the bulk-sharing
files' (``hub.sharing.writer.SHARING_HOOK``), so a CLI-only ``hub publish``, an Airflow
task and an embedded run all update them without importing ``hub.serve`` or
``hub.sharing`` themselves. ``register`` adds a listener in process (by name; it
replaces one of the same name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hub.catalog.models import Catalog, Resource
    from hub.settings import Settings
    from hub.storage.interface import Warehouse

PUBLISH_HOOKS_ENTRY_POINT = "exchange_hub.publish_hooks"

EventKind = Literal["published", "rolled_back"]


@dataclass(frozen=True)
class PublishEvent:
    """A resource's current version changed (or was confirmed unchanged) in the warehouse.

    ``result`` is the ``hub.publish.PublishResult`` being reported; a listener may append
    to its ``notes``. ``catalog`` is the catalog publish ran with (None: the listener
    loads the settings' own).
    """

    kind: EventKind
    warehouse: Warehouse
    settings: Settings
    resource: Resource
    result: Any
    catalog: Catalog | None = None


@dataclass(frozen=True)
class PublishHook:
    """A named listener; ``failure`` begins the note publish adds when it raises.

    ``before_prune`` runs first, while the versions past ``HUB_KEEP_VERSIONS`` are still
    in the warehouse (the sharing files' change set reads the parent version's table; the
    serving file applies what the history gained since the version it was synced to);
    ``run`` after publish dropped them.
    """

    name: str
    run: Callable[[PublishEvent], None]
    failure: str
    before_prune: Callable[[PublishEvent], None] | None = None


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


def emit(event: PublishEvent, prune: Callable[[], None] | None = None) -> None:
    """Run every hook on ``event``: each ``before_prune``, then ``prune`` (publish's
    retention, when given), then each ``run``. A hook that raises is noted on
    ``event.result`` (the published version stays, and the next publish or rollback runs
    the hook again)."""
    chosen = hooks()
    for hook in chosen:
        if hook.before_prune is not None:
            _run(hook, hook.before_prune, event)
    if prune is not None:
        prune()
    for hook in chosen:
        _run(hook, hook.run, event)


def _run(hook: PublishHook, listener: Callable[[PublishEvent], None], event: PublishEvent) -> None:
    try:
        listener(event)
    except Exception as exc:  # a reader's files failing must not undo the publish
        event.result.notes.append(f"{hook.failure}: {type(exc).__name__}: {exc}")
