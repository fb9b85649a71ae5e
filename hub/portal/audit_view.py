"""The auditor's search over the audit chain: entries filtered by application, end user,
purpose, resource and time, newest first, each with its place in the chain (seq,
prev_hash, entry_hash). Reads the same store :mod:`hub.audit` writes (``ops.audit_log`` on
PostgreSQL, the SQLite file beside an embedded warehouse); never writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.audit import AuditRecord, ChainReport
from hub.settings import Settings, SettingsError
from hub.storage.interface import search_audit_log


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
    for bound, op in ((where.since, ">="), (where.until, "<")):
        if bound is not None:
            clauses.append(f"at {op} ?")
            params.append(bound)  # each store compares times its own way (hub.storage)
    clause = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return search_audit_log(url, clause, params, limit, offset)


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
