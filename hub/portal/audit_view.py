"""The auditor's search over the audit chain: entries filtered by application, end user,
purpose, resource and time, newest first, each with its place in the chain (seq,
prev_hash, entry_hash). Reads the same store :mod:`hub.audit` writes (``ops.audit_log`` on
PostgreSQL, the SQLite file beside an embedded warehouse); never writes."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.audit import AuditRecord, ChainReport
from hub.audit.entries import COLUMNS, stored_record
from hub.settings import Settings, SettingsError
from hub.storage.urls import parse_store_url

_COLUMNS = ", ".join(COLUMNS)
_FIELDS = COLUMNS.index("fields")


@dataclass(frozen=True)
class AuditFilter:
    """Every given filter must match; text filters match exactly, ``purpose`` as a
    substring. Times are UTC-aware (``since`` inclusive, ``until`` exclusive)."""

    application: str | None = None
    end_user: str | None = None
    purpose: str | None = None
    resource: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def search_audit(
    url: str, where: AuditFilter, *, limit: int = 100, offset: int = 0
) -> tuple[list[AuditRecord], int]:
    """Matching entries (newest first, ``limit`` from ``offset``) and how many match in
    all. An audit log not created yet has no entries."""
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("application", "end_user", "resource"):
        value = getattr(where, column)
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if where.purpose:
        clauses.append("purpose LIKE ?")
        params.append("%" + where.purpose.replace("%", "").replace("_", "") + "%")
    store = parse_store_url(url)
    postgres = store.engine == "postgres"
    for bound, op in ((where.since, ">="), (where.until, "<")):
        if bound is not None:
            clauses.append(f"at {op} ?")
            params.append(bound.astimezone(UTC) if postgres else _iso(bound))
    clause = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    if postgres:
        return _search_postgres(url, clause, params, limit, offset)
    return _search_sqlite(store.file, clause, params, limit, offset)


def _record(row: tuple[Any, ...], at: datetime, fields: list[str]) -> AuditRecord:
    return stored_record(dict(zip(COLUMNS, row, strict=True)), at, fields)


def _search_sqlite(
    path: Path, clause: str, params: list[Any], limit: int, offset: int
) -> tuple[list[AuditRecord], int]:
    if not path.exists():
        return [], 0
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'"
        ).fetchone()
        if not exists:
            return [], 0
        total = connection.execute(f"SELECT count(*) FROM audit_log{clause}", params).fetchone()
        rows = connection.execute(
            f"SELECT {_COLUMNS} FROM audit_log{clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
    finally:
        connection.close()
    found = [
        _record(
            tuple(r),
            datetime.fromisoformat(str(r[2]).replace("Z", "+00:00")),
            list(json.loads(r[_FIELDS])),
        )
        for r in rows
    ]
    return found, int(total[0])


def _search_postgres(
    url: str, clause: str, params: list[Any], limit: int, offset: int
) -> tuple[list[AuditRecord], int]:
    import psycopg

    sql_clause = clause.replace("?", "%s")
    with psycopg.connect(parse_store_url(url).libpq) as connection:
        exists = connection.execute("SELECT to_regclass('ops.audit_log')").fetchone()
        if exists is None or exists[0] is None:
            return [], 0
        total = connection.execute(
            f"SELECT count(*) FROM ops.audit_log{sql_clause}", params
        ).fetchone()
        rows = connection.execute(
            f"SELECT {_COLUMNS} FROM ops.audit_log{sql_clause} ORDER BY seq DESC "
            "LIMIT %s OFFSET %s",
            [*params, limit, offset],
        ).fetchall()
    found = [_record(tuple(r), r[2], list(r[_FIELDS])) for r in rows]
    return found, int(total[0]) if total else 0


def verify_whole_chain(settings: Settings) -> ChainReport:
    """What ``hub audit verify`` checks: the whole chain, the anchors' signatures against
    the hub's current and recorded keys, and the anchors exported outside the database.
    Raises AuditError when there is no log to verify."""
    from hub.audit import anchor_dir, audit_url, exported_anchors, load_anchor_signer, verify_chain
    from hub.audit import max_gap_s as allowed_gap
    from hub.evidence import load_evidence_signer
    from hub.keys_registry import known_keys

    try:
        keys: dict[str, Any] | None = known_keys(
            settings, load_evidence_signer(settings), load_anchor_signer(settings)
        )
    except SettingsError:
        keys = None
    try:
        extra = exported_anchors(anchor_dir(settings))
    except SettingsError:
        extra = []
    return verify_chain(audit_url(settings), keys, anchors=extra, max_gap_s=allowed_gap(settings))
