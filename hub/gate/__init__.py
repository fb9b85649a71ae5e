"""The quality gate: validate candidate tables ``audit."<code>"`` before they are published.

Suites are YAML (``expectations/<code>.yml``, :mod:`hub.gate.suites`). ``run_gate``
compiles each into GX Core 1.x objects at run time and into SQL for the warehouse.

How the work is pushed down (the design, chosen for speed and flat memory):

1. Every row-level expectation becomes a boolean SQL expression (:mod:`hub.gate.pushdown`);
   the citizen-ID and credit-code checks are SQL too, agreeing with python-stdnum on every
   value (:mod:`hub.gate.checkdigits`, with a region table generated from stdnum's data).
2. One ``CREATE TABLE rejects."<code>__next" AS SELECT`` scans the candidate once in the
   warehouse and keeps one row per (failing row, rule), with ``_rule``, ``_column``,
   ``_value``, ``_severity`` and ``_gate_run_id``. Uniqueness and references are LEFT
   JOINs inside that statement. No candidate row is read into Python.
3. Unexpected counts and a few sample values per rule are read back from that (small)
   rejects table; one plain aggregate gives the row count, the newest ``_batch_id`` and
   the non-null counts ``mostly`` divides by. Row-count change compares with the current
   row of ``ops.publish_log``.
4. GX objects are then built from the YAML and those numbers (:mod:`hub.gate.gx`): an
   ``ExpectationSuite`` of GX's built-in expectations (plus the hub's own for check digits
   and references), ``ExpectationValidationResult`` objects in GX's SUMMARY format, and
   GX's Data Docs site under ``<HUB_HOME>/gate/docs``. GX itself executes nothing on the
   data: on DuckDB it cannot run in SQL at all, and its pandas path costs 10-24 times
   the SQL floor and about 1 GB per million rows.
5. In one transaction the staged rejects table replaces ``rejects."<code>"`` and the run
   goes to ``ops.gate_runs`` and ``ops.gate_results``.

Per session the gate turns PostgreSQL's JIT off (it costs more than it saves on these
long expressions) and caps DuckDB at ``HUB_DUCKDB_MEMORY_LIMIT`` (default 1GB, as every step; it
spills beyond), so memory stays flat with table size. Measured by ``bench/gate.py``
against the same checks as plain SQL aggregates: 1.2 times that floor on PostgreSQL and
about 2 times on DuckDB at 1M rows (where half a second of fixed cost counts), 1.25 times
on DuckDB at 10M in about 800 MB.

The verdict: a candidate passes when every ``severity: error`` expectation met its
``mostly``; warnings are reported only.
"""

from hub.gate.pushdown import GateError
from hub.gate.run import ExpectationResult, GateRun, ensure_gate_tables, run_gate, summarise
from hub.gate.suites import Suite, SuiteError, load_suite, load_suites

__all__ = [
    "ExpectationResult",
    "GateError",
    "GateRun",
    "Suite",
    "SuiteError",
    "ensure_gate_tables",
    "load_suite",
    "load_suites",
    "run_gate",
    "summarise",
]
