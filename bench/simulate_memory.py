"""The simulator's memory: peak RSS and wall time of `hub simulate` (day 0) and
`hub simulate --advance-day` at two or more scales, to show whether memory grows with
the city (issue 14, item 1: under 2 GB and flat from scale 100 to 1000).

    uv run python bench/simulate_memory.py                    # scales 10 and 30 (~3 min)
    uv run python bench/simulate_memory.py --scales 100,1000  # for the record (long)

Each run is a fresh process (`hub simulate` under `HUB_PROFILE=demo`, the embedded
SQLite systems) in its own HUB_HOME under a temporary folder, removed afterwards
(`--keep` leaves it). Peak RSS is the child's `ru_maxrss` from `os.wait4()`: it includes
the interpreter and the imports (about 140 MB). The growth per person between the first
and the last scale is printed: flat memory shows as a few bytes a person. This is a
measurement, not a test: no pass/fail exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PERSONS_AT_SCALE_1 = 10_000


def run(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``command``; its wall time, peak RSS (MB) and exit code."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    return {
        "wall_s": round(time.monotonic() - started, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "exit": os.waitstatus_to_exitcode(status),
    }


def measure(scale: float, seed: int, folder: Path) -> dict[str, Any]:
    home = folder / f"scale-{scale:g}"
    home.mkdir(parents=True)
    env = {**os.environ, "HUB_HOME": str(home), "HUB_PROFILE": "demo"}
    hub = [str(Path(sys.executable).with_name("hub"))]  # the environment's own command
    load = os.getloadavg()[0]
    day0 = run([*hub, "simulate", "--scale", f"{scale:g}", "--seed", str(seed)], env)
    day1 = run([*hub, "simulate", "--advance-day"], env) if day0["exit"] == 0 else {}
    rows = 0
    manifest = home / "systems" / "manifest.json"
    if manifest.exists():
        resources = json.loads(manifest.read_text())["resources"]
        rows = sum(int(r.get("source_rows") or 0) for r in resources.values())
    return {"scale": scale, "load": round(load, 1), "rows": rows, "day0": day0, "day1": day1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="10,30", help="comma-separated (default 10,30)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="leave the HUB_HOMEs in place")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    (ROOT / "state").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="simulate-memory-", dir=ROOT / "state"))
    results = []
    try:
        for scale in scales:
            results.append(measure(scale, args.seed, folder))
            result = results[-1]
            print(
                f"scale {scale:g} ({int(scale * PERSONS_AT_SCALE_1):,} persons, "
                f"{result['rows']:,} rows, load {result['load']}): "
                f"day 0 {result['day0']['wall_s']} s / {result['day0']['peak_rss_mb']} MB, "
                f"advance-day {result['day1'].get('wall_s')} s / "
                f"{result['day1'].get('peak_rss_mb')} MB",
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    if len(results) > 1:
        first, last = results[0], results[-1]
        persons = (last["scale"] - first["scale"]) * PERSONS_AT_SCALE_1
        for day in ("day0", "day1"):
            if first[day] and last[day]:
                growth = (last[day]["peak_rss_mb"] - first[day]["peak_rss_mb"]) * 2**20 / persons
                print(
                    f"{day}: peak RSS grows {growth:.0f} bytes a person from scale "
                    f"{first['scale']:g} to {last['scale']:g}"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
