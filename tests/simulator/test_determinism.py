"""Same seed, same scale, same systems: the simulator's output, digested per table and per
file, equals a reference recorded from the generators before they streamed
(``determinism_reference.json``; ``python -m simulator.digests HUB_HOME`` prints them).

A change that alters the output on purpose records a new reference and says why:
    uv run --frozen python tests/simulator/test_determinism.py --record
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from simulator import advance_day, simulate
from simulator.digests import system_digests
from simulator.settings import SimulatorSettings

REFERENCE = Path(__file__).with_name("determinism_reference.json")
SCALE = 0.3
SEED = 7


def run_days(home: Path) -> dict[str, Any]:
    settings = SimulatorSettings(home=home)
    simulate(settings, scale=SCALE, seed=SEED)
    found = {"day0": system_digests(settings)}
    advance_day(settings)
    found["day1"] = system_digests(settings)
    advance_day(settings)
    found["day2"] = system_digests(settings)
    return found


def test_the_same_seed_gives_the_recorded_systems(hub_home: Path) -> None:
    reference = json.loads(REFERENCE.read_text())
    found = run_days(hub_home)
    for day in ("day0", "day1", "day2"):
        for system in ("housing", "tax", "registry", "drops"):
            assert found[day][system] == reference[day][system], (day, system)
        assert found[day]["manifest"] == reference[day]["manifest"], day


def test_chunked_writing_gives_the_recorded_systems(
    hub_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every system is written a chunk at a time and columns drawn whole are drawn in
    pieces (lanes): chunks and pieces far smaller than the tables give the same systems
    byte for byte."""
    monkeypatch.setattr("simulator.rows.CHUNK_ROWS", 233)
    monkeypatch.setattr("simulator.lanes.SKIP_ROWS", 97)
    reference = json.loads(REFERENCE.read_text())
    found = run_days(hub_home)
    for day in ("day0", "day1", "day2"):
        assert found[day] == {k: reference[day][k] for k in found[day]}, day


if __name__ == "__main__" and "--record" in sys.argv:
    with tempfile.TemporaryDirectory() as folder:
        REFERENCE.write_text(json.dumps(run_days(Path(folder)), indent=2, sort_keys=True) + "\n")
    print(f"recorded {REFERENCE}")
