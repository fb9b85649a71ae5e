"""Runs the stock ``delta-sharing`` client (in its own environment, not the hub's) on a
plan of calls and reports each outcome; the tests read what it wrote.

    <client python> stock_client.py PLAN.json  ->  stdout: one JSON list of outcomes

Each step of the plan: ``{"call": ..., "args": {...}, "out": <parquet path or null>}``
with ``call`` one of ``list_all_tables``, ``load_as_pandas``,
``load_table_changes_as_pandas``, ``get_table_version``, ``get_table_metadata``,
``read_file_url`` (a file URL read the way the client's reader reads one). A
DataFrame is written to ``out`` (Parquet) and reported by its shape; an exception by
its type, HTTP status and message.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import delta_sharing
import pyarrow as pa
import pyarrow.parquet as pq


def run(step: dict[str, Any]) -> dict[str, Any]:
    call, args = step["call"], step.get("args", {})
    started = time.perf_counter()
    try:
        if call == "list_all_tables":
            tables = delta_sharing.SharingClient(args["profile"]).list_all_tables()
            value: Any = [f"{t.share}.{t.schema}.{t.name}" for t in tables]
        elif call == "get_table_version":
            value = delta_sharing.get_table_version(**args)
        elif call == "read_file_url":  # what the reader does with each file URL it is given
            from urllib.parse import urlparse

            import fsspec
            from pyarrow.dataset import dataset

            filesystem = fsspec.filesystem(urlparse(args["url"]).scheme)
            found = dataset(source=args["url"], format="parquet", filesystem=filesystem)
            value = {"rows": found.to_table().num_rows}
        elif call == "get_table_metadata":
            metadata = delta_sharing.get_table_metadata(**args, use_delta_format=False)
            value = {"id": metadata.id, "schema": json.loads(metadata.schema_string)}
        else:
            frame = getattr(delta_sharing, call)(**args)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            pq.write_table(table, step["out"])
            value = {"rows": len(frame), "columns": list(frame.columns)}
    except Exception as exc:
        response = getattr(exc, "response", None)
        return {
            "ok": False,
            "error": type(exc).__name__,
            "status": getattr(response, "status_code", None),
            "message": str(exc)[:2000],
            "seconds": time.perf_counter() - started,
        }
    return {"ok": True, "value": value, "seconds": time.perf_counter() - started}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        plan = json.load(handle)
    print(json.dumps([run(step) for step in plan]))


if __name__ == "__main__":
    main()
