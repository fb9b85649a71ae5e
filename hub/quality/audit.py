"""Quality-loop steps taken outside an API request (the gate, the command line, the
maintenance run) appended to the same hash-chained audit log as every API call."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hub.settings import Settings


def record_event(
    settings: Settings,
    action: str,
    *,
    caller: str,
    resource: str | None,
    purpose: str,
    rows: int = 0,
    fields: tuple[str, ...] = (),
    details: dict[str, Any] | None = None,
    caller_kind: str = "hub",
) -> None:
    """Append one entry (``action`` e.g. ``quality:hold_confirmed``); raises AuditError
    when the log cannot record, so a step is never taken unaudited silently."""
    from hub.audit import AuditEntry, open_log

    body = json.dumps(details, ensure_ascii=False, sort_keys=True, default=str).encode()
    entry = AuditEntry(
        request_id=uuid.uuid4().hex,
        at=datetime.now(UTC),
        application=caller[:200],
        caller_kind=caller_kind,
        end_user=None,
        purpose=purpose[:500],
        scenario=None,
        resource=resource,
        grant_id=None,
        version=None,
        action=action,
        fields=fields,
        row_count=rows,
        result_sha256=hashlib.sha256(body).hexdigest() if details is not None else None,
        status=200,
    )
    log = open_log(settings).start()
    try:
        log.append_sync(entry, timeout=30)
    finally:
        log.close()
