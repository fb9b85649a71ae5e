"""The serving part of a day's publish on the embedded warehouse: `hub publish` of every
resource with the serving hook (hub.serve.snapshots.SERVING_HOOK, both its phases) timed.

Run it in a HUB_HOME whose day is gated and not yet published (e.g. after `hub simulate
--advance-day`, `hub sync`, `hub build`, `hub gate` of a `bench/city.py`-like flow), on a
copy, since it publishes. ``--prepare`` first brings the serving files of the version
current now up to date with this checkout's code (what the previous day's publish would
have left), so the day measured applies changes rather than migrating a former layout.

    cp -a $HOME_READY /tmp/day && HUB_HOME=/tmp/day HUB_PROFILE=demo \\
      HUB_WAREHOUSE_URL=duckdb:////tmp/day/warehouse.duckdb \\
      .venv/bin/python bench/serving_publish.py --prepare
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.catalog import load_catalog
from hub.hooks import PublishEvent, PublishHook, register
from hub.publish import publish
from hub.serve import snapshots
from hub.settings import Settings
from hub.storage.interface import open_warehouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare", action="store_true", help="sync the serving files first")
    args = parser.parse_args()
    settings = Settings()
    if args.prepare:
        started = time.perf_counter()
        catalog = load_catalog(settings.catalog_dir)
        with open_warehouse(settings.warehouse_url) as warehouse:
            for resource in sorted(catalog.resources, key=lambda r: r.code):
                snapshots.sync_serving(warehouse, settings, resource)
        print(f"prepared the serving files in {time.perf_counter() - started:.1f} s")
    spent: dict[str, float] = {}
    hook = snapshots.SERVING_HOOK

    def timed(listener: object) -> object:
        if listener is None:
            return None

        def run(event: PublishEvent) -> None:
            started = time.perf_counter()
            try:
                listener(event)  # type: ignore[operator]
            finally:
                code = event.resource.code
                spent[code] = spent.get(code, 0.0) + time.perf_counter() - started

        return run

    register(
        PublishHook(hook.name, timed(hook.run), hook.failure, timed(hook.before_prune))  # type: ignore[arg-type]
    )
    started = time.perf_counter()
    results = publish(settings)
    total = time.perf_counter() - started
    for r in results:
        print(
            f"{r.resource:32} {r.status.value:10} publish {r.seconds:6.2f} s  "
            f"serving {spent.get(r.resource, 0):6.2f} s  {'; '.join(r.notes)}"
        )
    print(json.dumps({"publish_s": round(total, 2), "serving_s": round(sum(spent.values()), 2)}))


if __name__ == "__main__":
    main()
