"""Consumer-impact check before publish: do the decision fields flip against the last good version?

A candidate can pass every row rule and still flip thousands of values consumers decide
on overnight (every property right set to 历史 by a bad migration). Each resource names
its decision fields in the catalog (``decision_fields``); its suite sets the threshold
(``impact: {max_changed_share: 0.05}``). The gate compares the candidate
``audit."<code>"`` with the published ``shared."<code>"`` on those fields, row by row
matched on the primary key, in SQL in the warehouse (one aggregate join, then one
``GROUP BY old, new`` per field that changed and one sample query): nothing is read row by
row into Python.

When a field's changed share passes the threshold the gate run still passes its rules, but
a hold is recorded (``ops.publish_holds``, status ``held``): publish refuses it and the
last good version stays published, until the provider confirms (then it publishes) or
refuses (then it never does; a new gate run is needed). Decisions are in the audit chain.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from hub.catalog.models import Resource
from hub.gate.suites import ImpactRule
from hub.storage.interface import OpsStore, Warehouse
from hub.storage.sql import quote_ident

HELD = "held"
CONFIRMED = "confirmed"
REFUSED = "refused"
TRANSITIONS_KEPT = 20


class HoldError(ValueError):
    """A confirmation or refusal that does not apply (no such hold, already decided, stale)."""


@dataclass(frozen=True)
class FieldImpact:
    """How one decision field changed between the published version and the candidate."""

    field: str
    compared: int  # rows matched by key in both
    changed: int  # of those, rows whose value differs (NULL to a value counts)
    share: float
    transitions: list[tuple[str | None, str | None, int]]  # (published, candidate, rows)
    samples: list[dict[str, Any]]  # key values with the old and new value

    def describe(self) -> str:
        moves = ", ".join(f"{a}→{b} {n:,}" for a, b, n in self.transitions[:5])
        return f"{self.changed:,} of {self.compared:,} changed ({self.share:.2%})" + (
            f": {moves}" if moves else ""
        )


@dataclass(frozen=True)
class ImpactSummary:
    """The diff of one candidate against the published version on its decision fields."""

    resource: str
    gate_run_id: str
    compared_version: int
    threshold: float
    matched: int
    added: int  # candidate keys not published
    removed: int  # published keys not in the candidate
    fields: list[FieldImpact] = field(default_factory=list)
    min_rows: int = 1

    @property
    def worst_share(self) -> float:
        return max((f.share for f in self.fields), default=0.0)

    @property
    def held(self) -> bool:
        """Whether the publish waits for the provider: a field past the threshold."""
        return self.matched >= self.min_rows and any(
            f.share > self.threshold + 1e-12 for f in self.fields
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, default=str)


def measure(
    warehouse: Warehouse,
    resource: Resource,
    rule: ImpactRule,
    gate_run_id: str,
    published_version: int,
) -> ImpactSummary:
    """Compare ``audit."<code>"`` with ``shared."<code>"`` on the decision fields (SQL)."""
    code = resource.code
    candidate, published = f"audit.{quote_ident(code)}", f"shared.{quote_ident(code)}"
    keys = [quote_ident(k) for k in resource.primary_key]
    join = " AND ".join(f"c.{k} = p.{k}" for k in keys)
    decisions = [quote_ident(f) for f in resource.decision_fields]
    differs = [f"c.{d} IS DISTINCT FROM p.{d}" for d in decisions]
    counts = ", ".join(f"sum(CASE WHEN {d} THEN 1 ELSE 0 END)" for d in differs)
    row = warehouse.query(
        f"SELECT count(*), {counts} FROM {candidate} AS c JOIN {published} AS p ON {join}"
    )[0]
    matched = int(row[0])
    candidate_rows = int(warehouse.query(f"SELECT count(*) FROM {candidate}")[0][0])
    published_rows = int(warehouse.query(f"SELECT count(*) FROM {published}")[0][0])
    fields: list[FieldImpact] = []
    for index, name in enumerate(resource.decision_fields):
        changed = int(row[1 + index] or 0)
        transitions: list[tuple[str | None, str | None, int]] = []
        samples: list[dict[str, Any]] = []
        if changed:
            column = decisions[index]
            old, new = f"CAST(p.{column} AS VARCHAR)", f"CAST(c.{column} AS VARCHAR)"
            where = f"FROM {candidate} AS c JOIN {published} AS p ON {join} WHERE {differs[index]}"
            transitions = [
                (a, b, int(n))
                for a, b, n in warehouse.query(
                    f"SELECT {old}, {new}, count(*) {where} GROUP BY 1, 2 "
                    f"ORDER BY 3 DESC, 1, 2 LIMIT {TRANSITIONS_KEPT}"
                )
            ]
            if rule.samples:
                key_list = ", ".join(f"CAST(c.{k} AS VARCHAR)" for k in keys)
                order = ", ".join(f"c.{k}" for k in keys)
                for found in warehouse.query(
                    f"SELECT {key_list}, {old}, {new} {where} ORDER BY {order} LIMIT {rule.samples}"
                ):
                    sample = dict(zip(resource.primary_key, found[: len(keys)], strict=True))
                    sample["from"], sample["to"] = found[len(keys)], found[len(keys) + 1]
                    samples.append(sample)
        share = changed / matched if matched else 0.0
        fields.append(FieldImpact(name, matched, changed, share, transitions, samples))
    return ImpactSummary(
        resource=code,
        gate_run_id=gate_run_id,
        compared_version=published_version,
        threshold=rule.max_changed_share,
        matched=matched,
        added=candidate_rows - matched,
        removed=published_rows - matched,
        fields=fields,
        min_rows=rule.min_rows,
    )


# ------------------------------------------------------------------ holds (ops store)


@dataclass(frozen=True)
class Hold:
    """A publish held by the impact check (one row of ``ops.publish_holds``)."""

    gate_run_id: str
    resource: str
    provider: str
    status: str
    threshold: float
    worst_share: float
    compared_version: int | None
    summary: dict[str, Any]
    held_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None

    def describe(self) -> str:
        parts = []
        for item in self.summary.get("fields", []):
            if item["changed"]:
                moves = ", ".join(f"{a}→{b} {n:,}" for a, b, n in item["transitions"][:3])
                parts.append(
                    f"{item['field']}: {item['changed']:,} of {item['compared']:,} "
                    f"({item['share']:.2%}) {moves}"
                )
        return "; ".join(parts)


_HOLD_COLUMNS = (
    "gate_run_id, resource, provider, status, threshold, worst_share, compared_version, "
    "summary, held_at, decided_at, decided_by, reason"
)


def _hold(row: tuple[Any, ...]) -> Hold:
    values = list(row)
    values[7] = json.loads(values[7])
    values[4], values[5] = float(values[4]), float(values[5])
    return Hold(*values)


def record_hold(store: OpsStore, resource: Resource, summary: ImpactSummary, now: datetime) -> Hold:
    """Write the hold of a gate run (idempotent: a gate run is held once)."""
    with store.transaction():
        if not store.query(
            "SELECT 1 FROM ops.publish_holds WHERE gate_run_id = ?", (summary.gate_run_id,)
        ):
            store.execute(
                f"INSERT INTO ops.publish_holds ({_HOLD_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                (
                    summary.gate_run_id,
                    resource.code,
                    resource.provider,
                    HELD,
                    summary.threshold,
                    summary.worst_share,
                    summary.compared_version,
                    summary.to_json(),
                    now,
                ),
            )
    found = hold_of(store, summary.gate_run_id)
    assert found is not None
    return found


def hold_of(store: OpsStore, gate_run_id: str) -> Hold | None:
    rows = store.query(
        f"SELECT {_HOLD_COLUMNS} FROM ops.publish_holds WHERE gate_run_id = ?", (gate_run_id,)
    )
    return _hold(rows[0]) if rows else None


def holds(
    store: OpsStore,
    *,
    resource: str | None = None,
    provider: str | None = None,
    status: str | None = None,
) -> list[Hold]:
    """Holds, newest first, optionally of one resource, provider or status."""
    where, params = [], []
    for column, value in (("resource", resource), ("provider", provider), ("status", status)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = store.query(
        f"SELECT {_HOLD_COLUMNS} FROM ops.publish_holds{clause} ORDER BY held_at DESC, gate_run_id",
        params,
    )
    return [_hold(r) for r in rows]


def decide(
    store: OpsStore,
    resource: str,
    gate_run_id: str,
    *,
    confirm: bool,
    by: str,
    reason: str,
    department: str | None,
    latest_gate_run: str | None,
    now: datetime,
) -> Hold:
    """The provider confirms (the candidate publishes) or refuses (the last good version
    stays) a held publish. ``department``: the deciding department (None: the data
    bureau's own command line, which acts for the provider). Raises HoldError."""
    if not reason.strip():
        raise HoldError("a reason is required")
    with store.transaction():
        hold = hold_of(store, gate_run_id)
        if hold is None or hold.resource != resource:
            raise HoldError(f"{resource}: no held publish {gate_run_id!r}")
        if department is not None and department != hold.provider:
            raise HoldError(f"only {hold.provider} decides on its own held publish")
        if hold.status != HELD:
            raise HoldError(
                f"{resource}: {gate_run_id} was already {hold.status} by {hold.decided_by}"
            )
        if latest_gate_run is not None and latest_gate_run != gate_run_id:
            raise HoldError(
                f"{resource}: {gate_run_id} is no longer the latest gate run "
                f"({latest_gate_run} is); decide on that one"
            )
        store.execute(
            "UPDATE ops.publish_holds SET status = ?, decided_at = ?, decided_by = ?, reason = ? "
            "WHERE gate_run_id = ?",
            (CONFIRMED if confirm else REFUSED, now, by, reason, gate_run_id),
        )
    found = hold_of(store, gate_run_id)
    assert found is not None
    return found
