"""The write path does not import the API nor the sharing files: publish tells hooks that
the serving and sharing sides register (hub.hooks; the hooks running on publish are
tested in tests/publish)."""

from __future__ import annotations

import subprocess
import sys

from hub.hooks import PUBLISH_HOOKS_ENTRY_POINT, hooks
from tests.import_graph import import_graph

READERS = ("hub.serve", "hub.sharing")


def test_importing_publish_loads_nothing_of_the_serving_or_sharing_side() -> None:
    code = (
        "import sys, hub.publish\n"
        f"readers = {[r.split('.') for r in READERS]!r}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[:2] in readers)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == ""


def test_publish_never_imports_the_readers_even_inside_a_function() -> None:
    graph = import_graph(every_import=True)
    assert not {m for m in graph["hub.publish"] if m.startswith(READERS)}
    assert not {m for m in graph["hub.hooks"] if m.startswith(READERS)}


def test_the_serving_and_sharing_hooks_are_installed_through_entry_points() -> None:
    from importlib.metadata import entry_points

    (serving,) = entry_points(group=PUBLISH_HOOKS_ENTRY_POINT, name="serving")
    assert serving.value == "hub.serve.snapshots:SERVING_HOOK"
    (sharing,) = entry_points(group=PUBLISH_HOOKS_ENTRY_POINT, name="sharing")
    assert sharing.value == "hub.sharing.writer:SHARING_HOOK"
    assert {"serving", "sharing"} <= {hook.name for hook in hooks()}
