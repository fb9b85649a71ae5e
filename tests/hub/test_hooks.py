"""The write path does not import the API: publish tells hooks that the serving side
registers (hub.hooks; the hooks running on publish are tested in tests/publish)."""

from __future__ import annotations

import subprocess
import sys

from hub.hooks import PUBLISH_HOOKS_ENTRY_POINT, hooks
from tests.import_graph import import_graph


def test_importing_publish_loads_nothing_of_the_serving_side() -> None:
    code = (
        "import sys, hub.publish\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[:2] == ['hub', 'serve'])\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == ""


def test_publish_never_imports_the_serving_side_even_inside_a_function() -> None:
    graph = import_graph(every_import=True)
    assert not {m for m in graph["hub.publish"] if m.startswith("hub.serve")}
    assert not {m for m in graph["hub.hooks"] if m.startswith("hub.serve")}


def test_the_serving_hook_is_installed_through_the_entry_point() -> None:
    from importlib.metadata import entry_points

    (entry,) = entry_points(group=PUBLISH_HOOKS_ENTRY_POINT, name="serving")
    assert entry.value == "hub.serve.snapshots:SERVING_HOOK"
    assert "serving" in [hook.name for hook in hooks()]
