"""Compile a suite into warehouse SQL: the rejects table, the counts, the sample values.

Row-level expectations become one boolean "fails" expression each. A single
``CREATE TABLE rejects."<code>__next" AS SELECT`` scans the candidate once, keeps the rows
where any expression is true and unpivots them (``CROSS JOIN LATERAL (VALUES ...)``) into
one rejects row per failed rule, with the rule, column, value and severity. Uniqueness
and references are LEFT JOINs to small derived tables (duplicated keys; the other
resource's distinct keys), check digits join ``ops.gate_cn_regions``. Unexpected counts and
sample values are then read from the rejects table, which holds only failing rows; one
cheap aggregate gives the row count and the non-null counts that ``mostly`` divides by.
No row of the candidate leaves the warehouse.

A daily run checks only what changed (:func:`changed_rejects_sql`): the row-local rules
(:func:`row_local`: a row passes or fails them on its own values) run on the rows of
batches newer than the previous gate run saw, their earlier rejects of unchanged rows are
carried over (:func:`carried_sql`), and the rules that need the whole table (uniqueness,
references, bounds relative to today) run on every row, as joins and comparisons
without the costly per-row functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from hub.catalog.models import Resource
from hub.gate import checkdigits
from hub.gate.suites import (
    Between,
    CitizenId,
    CreditCode,
    ExistsIn,
    ExpectationBase,
    InSet,
    NoSourceDuplicates,
    NotNull,
    PartyId,
    Regex,
    Suite,
    Unique,
)
from hub.storage.interface import Dialect
from hub.storage.sql import key_match, literal, quote_ident

SAMPLE_VALUES = 5


class GateError(RuntimeError):
    """The gate cannot run for a resource; the message says which and why."""


@dataclass
class RowRule:
    """One row-level expectation compiled: when a row fails it, and the value to report."""

    index: int
    expectation: ExpectationBase
    fails: str
    value: str
    denominator: str  # SQL aggregate: the values ``mostly`` is a share of


@dataclass
class CompiledSuite:
    """The SQL of one resource's gate run, and what could not be compiled (with why)."""

    rules: list[RowRule] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)  # per-row values computed once
    derived_after: list[str] = field(default_factory=list)  # computed from ``derived``
    not_run: dict[int, str] = field(default_factory=dict)  # suite index -> reason


def _column(name: str) -> str:
    return f"t.{quote_ident(name)}"


def _as_text(dialect: Dialect, expression: str) -> str:
    return f"CAST({expression} AS {dialect.text})"


def _bound(value: int | float | str, field_type: str, today: date) -> tuple[str, str]:
    """(SQL literal, comparison target) for a ``between`` bound on a field of ``field_type``."""
    if isinstance(value, str):
        day = today if value == "today" else date.fromisoformat(value)
        if field_type == "timestamp":
            # a date bound on a timestamp means that whole day
            return literal(day), "date"
        if field_type != "date":
            raise GateError(f"a date bound ({value!r}) on a {field_type} field")
        return literal(day), "value"
    if field_type in {"date", "timestamp", "string", "boolean"}:
        raise GateError(f"a number bound ({value!r}) on a {field_type} field")
    return literal(value), "value"


def row_local(item: ExpectationBase) -> bool:
    """Whether a row passes or fails ``item`` on its own values alone, the same every day:
    not uniqueness or references (other rows decide) nor a bound relative to today."""
    if isinstance(item, Unique | ExistsIn):
        return False
    if isinstance(item, Between):
        return "today" not in (item.min, item.max)
    return True


@dataclass(frozen=True)
class Changed:
    """What a daily run follows on from: the rows of batches newer than ``since`` changed,
    ``previous`` holds the last run's rejects (of a candidate otherwise unchanged).

    A group of rows sharing a value is either touched by a changed row or made only of
    unchanged rows, which were all there at the last run and so among its duplicates:
    counting just those values finds every duplicate, without grouping the whole table.
    """

    since: str
    previous: str

    def touches(self, item: ExpectationBase, keys: list[str], candidate: str) -> str:
        """SQL: ``d``'s values of ``keys`` are a changed row's or a previous duplicate's."""
        columns = ", ".join(keys)
        values = (
            f"SELECT {columns} FROM {candidate} WHERE _batch_id > {literal(self.since)} "
            f"UNION SELECT {columns} FROM {self.previous} "
            f"WHERE _rule = {literal(item.rule)} "
            f"AND coalesce(_column, '') = {literal(item.column_label or '')}"
        )
        same = " AND ".join(f"v.{k} = d.{k}" for k in keys)
        return f"EXISTS (SELECT 1 FROM ({values}) AS v WHERE {same})"


def compile_suite(
    dialect: Dialect,
    suite: Suite,
    resource: Resource,
    candidate_columns: list[str],
    reference_tables: dict[str, str | None],
    today: date,
    region_slots: int = 0,
    select: Callable[[ExpectationBase], bool] | None = None,
    changed: Changed | None = None,
) -> CompiledSuite:
    """Row-level SQL for every expectation of ``suite`` on ``audit."<code>"`` (alias ``t``).

    ``reference_tables`` maps a resource code to the qualified table to check references
    against (None: none exists). ``region_slots`` comes from
    :func:`checkdigits.ensure_region_table`; citizen-ID checks need it (GateError
    without). Expectations that cannot run (a column missing from the candidate, no
    reference table) are listed in ``not_run`` with the reason. ``select``: compile only
    the expectations it accepts (their indexes stay those of the suite). ``changed``: a
    uniqueness check counts only the values of changed rows and of the previous run's
    duplicates (see :class:`Changed`).
    """
    compiled = CompiledSuite()
    candidate = f"audit.{quote_ident(resource.code)}"
    key_text = (
        "concat_ws('|', "
        + ", ".join(_as_text(dialect, _column(k)) for k in resource.primary_key)
        + ")"
    )
    types = {f.name: f.type for f in resource.fields}
    types["_source_duplicates"] = "integer"
    for index, item in enumerate(suite.expectations):
        if not item.row_level or (select is not None and not select(item)):
            continue
        missing = [c for c in item.columns if c not in candidate_columns]
        if missing:
            compiled.not_run[index] = f"column {', '.join(missing)} missing from {candidate}"
            continue
        column = _column(item.columns[0])
        value = _as_text(dialect, column)
        denominator = f"count({column})"
        if isinstance(item, NotNull):
            fails = f"{column} IS NULL"
            denominator = "count(*)"
        elif isinstance(item, Unique):
            alias = f"u{index}"
            keys = [quote_ident(c) for c in item.columns]
            present = " AND ".join(f"d.{k} IS NOT NULL" for k in keys)
            if changed is not None:
                present += " AND " + changed.touches(item, keys, candidate)
            compiled.joins.append(
                f"LEFT JOIN (SELECT {', '.join(f'd.{k}' for k in keys)} FROM {candidate} AS d "
                f"WHERE {present} "
                f"GROUP BY {', '.join(f'd.{k}' for k in keys)} HAVING count(*) > 1) {alias} ON "
                + " AND ".join(f"t.{k} = {alias}.{k}" for k in keys)
            )
            fails = f"{alias}.{keys[0]} IS NOT NULL"
            if len(keys) > 1:
                value = (
                    "concat_ws('|', " + ", ".join(_as_text(dialect, f"t.{k}") for k in keys) + ")"
                )
                present = " AND ".join(f"t.{k} IS NOT NULL" for k in keys)
                denominator = f"sum(CASE WHEN {present} THEN 1 ELSE 0 END)"
        elif isinstance(item, InSet):
            if types.get(item.columns[0]) == "string":
                members = ", ".join(literal(str(v)) for v in item.values)
            else:
                members = ", ".join(literal(v) for v in item.values)
            fails = f"{column} IS NOT NULL AND {column} NOT IN ({members})"
        elif isinstance(item, Between):
            field_type = types[item.columns[0]]
            tests = []
            for bound, operator in ((item.min, "<"), (item.max, ">")):
                if bound is None:
                    continue
                sql, target = _bound(bound, field_type, today)
                compared = f"CAST({column} AS DATE)" if target == "date" else column
                tests.append(f"{compared} {operator} {sql}")
            fails = f"{column} IS NOT NULL AND ({' OR '.join(tests)})"
        elif isinstance(item, Regex):
            fails = f"{column} IS NOT NULL AND NOT {dialect.matches(column, item.pattern)}"
        elif isinstance(item, CitizenId | PartyId | CreditCode):
            checks = []
            if isinstance(item, CitizenId | PartyId):
                region, derived, body = f"r{index}", f"t._ric{index}", f"t._ricb{index}"
                if region_slots < 1:
                    raise GateError("citizen-ID checks need ops.gate_cn_regions: ensure it first")
                compiled.derived.append(
                    f"{checkdigits.ric_candidate(dialect, column)} AS _ric{index}"
                )
                compiled.derived_after.append(f"{checkdigits.ric_body(derived)} AS _ricb{index}")
                compiled.joins.append(
                    f"LEFT JOIN {checkdigits.REGION_TABLE} {region} "
                    f"ON {region}.code = {checkdigits.ric_region_key(derived)}"
                )
                checks.append(checkdigits.ric_valid(dialect, derived, body, region, region_slots))
            if isinstance(item, CreditCode | PartyId):
                derived = f"t._uscc{index}"
                compiled.derived.append(
                    f"{checkdigits.uscc_candidate(dialect, column)} AS _uscc{index}"
                )
                checks.append(checkdigits.uscc_valid(derived))
            valid = " OR ".join(f"coalesce({c}, FALSE)" for c in checks)
            fails = f"{column} IS NOT NULL AND NOT ({valid})"
        elif isinstance(item, ExistsIn):
            sources = []
            absent = []
            for other, key in item.references:
                table = reference_tables.get(other)
                if table is None:
                    absent.append(other)
                else:
                    sources.append(f"SELECT {quote_ident(key)} AS k FROM {table}")
            if absent:
                compiled.not_run[index] = (
                    f"no table to check references against: audit or shared {', '.join(absent)}"
                )
                continue
            alias = f"e{index}"
            compiled.joins.append(
                f"LEFT JOIN ({' UNION '.join(sources)}) {alias} ON {column} = {alias}.k"
            )
            fails = f"{column} IS NOT NULL AND {alias}.k IS NULL"
        elif isinstance(item, NoSourceDuplicates):
            fails = f"{column} > 1"
            value = key_text
            denominator = "count(*)"
        else:  # pragma: no cover - every row-level kind is handled above
            raise GateError(f"no SQL for expectation {item.rule!r}")
        compiled.rules.append(RowRule(index, item, f"({fails})", value, denominator))
    return compiled


def source_sql(
    dialect: Dialect, compiled: CompiledSuite, resource: Resource, since: str | None = None
) -> str:
    """The FROM clause every rule reads: the candidate as ``t``, derived values, joins.

    Values used many times per row (a normalised ID) are computed once in a subquery; on
    PostgreSQL ``OFFSET 0`` keeps the planner from inlining them back into each use.
    ``since``: only the rows of batches newer than that ``_batch_id``.
    """
    candidate = f"audit.{quote_ident(resource.code)}"
    source = f"{candidate} t"
    if since is not None:
        source = f"(SELECT * FROM {candidate} WHERE _batch_id > {literal(since)}) t"
    fence = dialect.subquery_fence
    for level in (compiled.derived, compiled.derived_after):
        if level:
            source = f"(SELECT t.*, {', '.join(level)} FROM {source}{fence}) t"
    return " ".join([source, *compiled.joins])


def rejects_sql(
    dialect: Dialect,
    compiled: CompiledSuite,
    resource: Resource,
    candidate_columns: list[str],
    target: str,
    gate_run_id: str,
) -> str:
    """``CREATE TABLE <target> AS``: every failing (row, rule) of the candidate."""
    return f"CREATE TABLE {target} AS " + _rejects_select(
        dialect, compiled, resource, candidate_columns, gate_run_id
    )


def changed_rejects_sql(
    dialect: Dialect,
    compiled: CompiledSuite,
    resource: Resource,
    candidate_columns: list[str],
    target: str,
    gate_run_id: str,
    since: str,
) -> str:
    """``INSERT INTO <target>``: every failing (row, rule) among the candidate's rows of
    batches newer than ``since``."""
    return f"INSERT INTO {target} " + _rejects_select(
        dialect, compiled, resource, candidate_columns, gate_run_id, since
    )


def _rejects_select(
    dialect: Dialect,
    compiled: CompiledSuite,
    resource: Resource,
    candidate_columns: list[str],
    gate_run_id: str,
    since: str | None = None,
) -> str:
    candidate = f"audit.{quote_ident(resource.code)}"
    columns = ", ".join(f"c.{quote_ident(c)}" for c in candidate_columns)
    tail = f"f._rule, f._column, f._value, f._severity, {literal(gate_run_id)} AS _gate_run_id"
    if not compiled.rules:
        return (
            "SELECT "
            + ", ".join(f"t.{quote_ident(c)}" for c in candidate_columns)
            + ", CAST(NULL AS VARCHAR) AS _rule, CAST(NULL AS VARCHAR) AS _column, "
            "CAST(NULL AS VARCHAR) AS _value, CAST(NULL AS VARCHAR) AS _severity, "
            f"CAST(NULL AS VARCHAR) AS _gate_run_id FROM {candidate} t WHERE FALSE"
        )
    flags = ", ".join(
        f"{rule.fails} AS _f{rule.index}, {rule.value} AS _v{rule.index}" for rule in compiled.rules
    )
    any_fails = " OR ".join(rule.fails for rule in compiled.rules)
    unpivot = ", ".join(
        f"(CAST({literal(rule.expectation.rule)} AS VARCHAR), "
        f"CAST({literal(rule.expectation.column_label)} AS VARCHAR), "
        f"c._v{rule.index}, CAST({literal(rule.expectation.severity)} AS VARCHAR), "
        f"c._f{rule.index})"
        for rule in compiled.rules
    )
    return (
        f"SELECT {columns}, {tail} FROM ("
        f"SELECT t.*, {flags} FROM {source_sql(dialect, compiled, resource, since)} "
        f"WHERE {any_fails}) c "
        f"CROSS JOIN LATERAL (VALUES {unpivot}) AS f(_rule, _column, _value, _severity, _failed) "
        "WHERE f._failed"
    )


def carried_sql(
    compiled: CompiledSuite,
    resource: Resource,
    candidate_columns: list[str],
    previous: str,
    target: str,
    gate_run_id: str,
    since: str,
) -> str:
    """``INSERT INTO <target>``: the rejects of ``compiled``'s rules in ``previous`` (the
    last run's rejects table) for rows still in the candidate unchanged: same key, same
    ``_batch_id``, no newer than ``since``, as ``gate_run_id``'s."""
    candidate = f"audit.{quote_ident(resource.code)}"
    columns = ", ".join(f"r.{quote_ident(c)}" for c in candidate_columns)
    labels = " OR ".join(
        f"(r._rule = {literal(rule.expectation.rule)} AND "
        f"coalesce(r._column, '') = {literal(rule.expectation.column_label or '')})"
        for rule in compiled.rules
    )
    same_row = f"{key_match(_key_columns(resource), 'c', 'r')} AND c._batch_id = r._batch_id"
    return (
        f"INSERT INTO {target} SELECT {columns}, r._rule, r._column, r._value, r._severity, "
        f"{literal(gate_run_id)} AS _gate_run_id FROM {previous} AS r "
        f"WHERE r._batch_id <= {literal(since)} AND ({labels or 'FALSE'}) "
        f"AND EXISTS (SELECT 1 FROM {candidate} AS c WHERE {same_row})"
    )


def _key_columns(resource: Resource) -> list[tuple[str, bool]]:
    return [(k, resource.field(k).nullable) for k in resource.primary_key]


def rules_digest(compiled: CompiledSuite, suite: Suite, candidate_columns: list[str]) -> str:
    """What the rejects an unchanged row keeps depend on besides the rows: the row-local
    rules' SQL (``compiled``: rules, severities, the region table's size), which rules
    the suite has (a uniqueness check follows on from its earlier duplicates) and the
    candidate's columns. Equal digests: an earlier run's rejects of an unchanged row
    still hold."""
    sql = "\n".join(f"{r.expectation.rule}|{r.expectation.column_label}|{r.expectation.severity}|"
                     f"{r.fails}|{r.value}" for r in compiled.rules)  # fmt: skip
    rules = [f"{i.rule}|{i.column_label}|{i.severity}" for i in suite.expectations]
    text = "\n".join([sql, *compiled.derived, *compiled.derived_after, *compiled.joins,
                      *rules, ",".join(candidate_columns)])  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stats_sql(compiled: CompiledSuite, resource: Resource, has_batch: bool) -> str:
    """One aggregate: row count, max ``_batch_id`` and each rule's ``mostly`` denominator."""
    candidate = f"audit.{quote_ident(resource.code)}"
    parts = ["count(*)", "max(t._batch_id)" if has_batch else "CAST(NULL AS VARCHAR)"]
    parts += [rule.denominator for rule in compiled.rules]
    return f"SELECT {', '.join(parts)} FROM {candidate} t"


def counts_sql(table: str) -> str:
    """Failing rows per rule, from the rejects table."""
    return f"SELECT _rule, _column, count(*) FROM {table} GROUP BY _rule, _column"


def samples_sql(table: str) -> str:
    """Up to :data:`SAMPLE_VALUES` distinct failing values per rule, from the rejects table."""
    return (
        "SELECT _rule, _column, _value FROM (SELECT _rule, _column, _value, row_number() "
        "OVER (PARTITION BY _rule, _column ORDER BY _value) AS n FROM "
        f"(SELECT DISTINCT _rule, _column, _value FROM {table}) d) s "
        f"WHERE n <= {SAMPLE_VALUES} ORDER BY _rule, _column, _value"
    )
