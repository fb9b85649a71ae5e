"""Disputes (疑义) on published records, answered by their provider within a deadline.

An application (``POST /v1/disputes``, under a grant covering the record and the field) or
a portal user files a dispute: resource, record key, field, the value believed right and
the evidence. From that instant every reader sees the record flagged (records answers,
verification answers and their evidence documents, the export, the sharing sidecar), the
provider is notified through the reminders' outbox, and must answer within the catalog's
working-day deadline (``dispute_working_days``, on the calendar of :mod:`hub.demand.calendar`):

- ``confirm``: the value is wrong and is being corrected at source; the flag reads
  "corrected at source, pending next sync" (status ``confirmed``) until a published
  version carries a different value for that record and field (status ``corrected``,
  found by :func:`settle_corrections` at each publish);
- ``reject`` with a reason: the value stands (status ``rejected``, no longer flagged).

An open dispute past its deadline is escalated to the data bureau once
(:func:`escalate_overdue`, run by ``hub reminders send`` and the maintenance DAG). Every
step is a row of ``ops.dispute_events`` and an entry in the audit chain (by the caller:
the API pipeline, the portal's guard, or :func:`hub.quality.audit.record_event`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.catalog.models import Catalog, Resource
from hub.demand.calendar import WorkingDays, to_local
from hub.storage.interface import OpsStore

OPEN = "open"
CONFIRMED = "confirmed"  # corrected at source, pending the next sync
CORRECTED = "corrected"  # a published version carries a different value
REJECTED = "rejected"
FLAGGED = (OPEN, CONFIRMED)  # what readers are told about
LABELS = {
    OPEN: "disputed, awaiting the provider's answer",
    CONFIRMED: "corrected at source, pending next sync",
}
FILED = "dispute_filed"  # reminder thresholds in ops.reminder_outbox
OVERDUE = "dispute_overdue"
MAX_TEXT = 2_000


class DisputeError(ValueError):
    """A dispute that cannot be filed or answered as asked (the message says why)."""


class DisputeNotFoundError(DisputeError, LookupError):
    """No such dispute (or not one the caller may see)."""


@dataclass(frozen=True)
class Dispute:
    """One row of ``ops.disputes``."""

    dispute_id: str
    resource: str
    provider: str
    record_key: tuple[str, ...]  # the primary-key values, in the catalog's key order
    subject: str | None  # the record's first subject field (verification looks it up)
    field: str
    published_value: str | None
    proposed_value: str
    evidence: str
    filed_by: str
    application: str | None
    grant_id: str | None
    filed_at: datetime
    filed_version: int | None
    status: str
    deadline: datetime
    answered_at: datetime | None
    answered_by: str | None
    answer_reason: str | None
    escalated_at: datetime | None
    corrected_version: int | None
    updated_at: datetime

    @property
    def flagged(self) -> bool:
        return self.status in FLAGGED

    def overdue(self, now: datetime) -> bool:
        return self.status == OPEN and self.deadline <= now

    def flag(self) -> dict[str, Any]:
        """What every reader of the record is told (never the proposed value: the
        consumer's claim is not data)."""
        return {
            "dispute_id": self.dispute_id,
            "field": self.field,
            "status": self.status,
            "label": LABELS.get(self.status, self.status),
            "filed_at": self.filed_at.isoformat(" "),
            "deadline": self.deadline.isoformat(" "),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "dispute_id": self.dispute_id,
            "resource": self.resource,
            "provider": self.provider,
            "record_key": list(self.record_key),
            "field": self.field,
            "published_value": self.published_value,
            "proposed_value": self.proposed_value,
            "evidence": self.evidence,
            "filed_by": self.filed_by,
            "application": self.application,
            "filed_at": self.filed_at.isoformat(" "),
            "filed_version": self.filed_version,
            "status": self.status,
            "label": LABELS.get(self.status, self.status),
            "deadline": self.deadline.isoformat(" "),
            "answered_at": self.answered_at.isoformat(" ") if self.answered_at else None,
            "answered_by": self.answered_by,
            "answer_reason": self.answer_reason,
            "escalated_at": self.escalated_at.isoformat(" ") if self.escalated_at else None,
            "corrected_version": self.corrected_version,
        }


_COLUMNS = (
    "dispute_id, resource, provider, record_key, subject, field, published_value, "
    "proposed_value, evidence, filed_by, application, grant_id, filed_at, filed_version, "
    "status, deadline, answered_at, answered_by, answer_reason, escalated_at, "
    "corrected_version, updated_at"
)


def _dispute(row: Sequence[Any]) -> Dispute:
    values = list(row)
    values[3] = tuple(json.loads(values[3]))
    return Dispute(*values)


def record_key(resource: Resource, key: dict[str, Any]) -> tuple[str, ...]:
    """The key values of ``key`` in the catalog's key order, as text. Raises DisputeError."""
    missing = [k for k in resource.primary_key if key.get(k) in (None, "")]
    extra = sorted(set(key) - set(resource.primary_key))
    if missing or extra:
        raise DisputeError(
            f"record: give exactly the key of {resource.code} "
            f"({', '.join(resource.primary_key)})"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; not key fields: {', '.join(extra)}" if extra else "")
        )
    return tuple(str(key[k]) for k in resource.primary_key)


def key_of(resource: Resource, row: dict[str, Any]) -> tuple[str, ...]:
    """A published row's key as :func:`record_key` stores it."""
    return tuple(str(row[k]) for k in resource.primary_key)


def _text(name: str, value: str, *, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise DisputeError(f"{name}: required")
    if len(value) > MAX_TEXT:
        raise DisputeError(f"{name}: at most {MAX_TEXT} characters")
    bad = next((c for c in value if (ord(c) < 32 and c not in "\n\t") or c == "\x7f"), None)
    if bad is not None:
        raise DisputeError(f"{name}: control character U+{ord(bad):04X} is not allowed")
    return value


class DisputeBook:
    """Disputes in the ops store, their deadlines on the working-day calendar."""

    def __init__(self, store: OpsStore, catalog: Catalog) -> None:
        self.store, self.catalog = store, catalog
        self.working_days = WorkingDays(catalog.calendar)

    def working_days_for(self, resource: Resource) -> int:
        return resource.dispute_working_days or self.catalog.calendar.dispute_working_days

    # -------------------------------------------------------------- reading

    def get(self, dispute_id: str) -> Dispute:
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM ops.disputes WHERE dispute_id = ?", (dispute_id[:64],)
        )
        if not rows:
            raise DisputeNotFoundError(f"no dispute {dispute_id[:64]!r}")
        return _dispute(rows[0])

    def disputes(
        self,
        *,
        resource: str | None = None,
        provider: str | None = None,
        application: str | None = None,
        statuses: Sequence[str] = (),
    ) -> list[Dispute]:
        """Disputes, oldest first, narrowed by any of the arguments."""
        where, params = [], []
        for column, value in (
            ("resource", resource),
            ("provider", provider),
            ("application", application),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM ops.disputes{clause} ORDER BY filed_at, dispute_id", params
        )
        return [_dispute(r) for r in rows]

    def flags(self, resource: str) -> dict[tuple[str, ...], list[dict[str, Any]]]:
        """The flags readers are shown, by record key: open and confirmed disputes."""
        found: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for item in self.disputes(resource=resource, statuses=FLAGGED):
            found.setdefault(item.record_key, []).append(item.flag())
        return found

    def revision(self, resource: str) -> tuple[int, datetime | None]:
        """(how many events the resource's disputes have had, when the last was): it
        moves whenever a flag can change, so it versions the shared disputes table."""
        rows = self.store.query(
            "SELECT count(*), max(e.occurred_at) FROM ops.dispute_events e "
            "JOIN ops.disputes d ON d.dispute_id = e.dispute_id WHERE d.resource = ?",
            (resource,),
        )
        count, last = rows[0]
        if isinstance(last, str):
            last = datetime.fromisoformat(last)
        return int(count), last

    def flags_for_subject(
        self, resource: str, subject: str, fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Flagged disputes on ``fields`` of records about ``subject`` (verification)."""
        marks = ", ".join("?" for _ in FLAGGED)
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM ops.disputes WHERE resource = ? AND subject = ? "
            f"AND status IN ({marks}) ORDER BY filed_at, dispute_id",
            (resource, subject, *FLAGGED),
        )
        return [
            d.flag() | {"record_key": list(d.record_key)}
            for d in map(_dispute, rows)
            if d.field in fields
        ]

    def events(self, dispute_id: str) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT occurred_at, actor, action, from_status, to_status, reason FROM "
            "ops.dispute_events WHERE dispute_id = ? ORDER BY occurred_at, event_id",
            (dispute_id,),
        )
        names = ("occurred_at", "actor", "action", "from_status", "to_status", "reason")
        return [dict(zip(names, row, strict=True)) for row in rows]

    # -------------------------------------------------------------- changes

    def _event(
        self,
        dispute_id: str,
        now: datetime,
        actor: str,
        action: str,
        before: str | None,
        after: str,
        reason: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.store.execute(
            "INSERT INTO ops.dispute_events (event_id, dispute_id, occurred_at, actor, action, "
            "from_status, to_status, reason, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"DE-{secrets.token_hex(8).upper()}",
                dispute_id,
                now,
                actor,
                action,
                before,
                after,
                reason,
                json.dumps(details, ensure_ascii=False, default=str) if details else None,
            ),
        )

    def file(
        self,
        resource: Resource,
        key: dict[str, Any],
        field: str,
        *,
        proposed_value: str,
        evidence: str,
        by: str,
        now: datetime,
        published: dict[str, Any] | None,
        version: int | None,
        application: str | None = None,
        grant_id: str | None = None,
    ) -> tuple[Dispute, bool]:
        """File a dispute on ``field`` of the record ``key`` (``published``: that record
        as the current version holds it; None: no such record, refused). Returns the
        dispute and whether it is new: the same field of the same record already under
        dispute returns that one. Raises DisputeError."""
        if field not in {f.name for f in resource.fields}:
            raise DisputeError(f"{resource.code} has no field {field[:64]!r}")
        if field in resource.primary_key:
            raise DisputeError(
                f"{field} is part of {resource.code}'s key: dispute the record's other fields"
            )
        values = record_key(resource, key)
        if published is None:
            shown = dict(zip(resource.primary_key, values, strict=True))
            raise DisputeNotFoundError(f"{resource.code} has no published record {shown}")
        proposed_value = _text("value", proposed_value)
        evidence = _text("evidence", evidence)
        by = _text("filed_by", by)
        current = published.get(field)
        current_text = None if current is None else str(current)
        if current_text == proposed_value:
            raise DisputeError(f"{field}: the published value is already {proposed_value!r}")
        subject_field = (resource.subject_fields or resource.primary_key)[0]
        subject = published.get(subject_field)
        encoded = json.dumps(list(values), ensure_ascii=False)
        with self.store.transaction():
            existing = self.store.query(
                f"SELECT {_COLUMNS} FROM ops.disputes WHERE resource = ? AND record_key = ? "
                f"AND field = ? AND status IN ({', '.join('?' for _ in FLAGGED)})",
                (resource.code, encoded, field, *FLAGGED),
            )
            if existing:
                return _dispute(existing[0]), False
            deadline = self.working_days.deadline(now, self.working_days_for(resource))
            dispute_id = f"DSP-{to_local(now):%Y%m%d}-{secrets.token_hex(4).upper()}"
            self.store.execute(
                f"INSERT INTO ops.disputes ({_COLUMNS}) VALUES "
                f"({', '.join('?' for _ in range(22))})",
                (
                    dispute_id,
                    resource.code,
                    resource.provider,
                    encoded,
                    None if subject is None else str(subject),
                    field,
                    current_text,
                    proposed_value,
                    evidence,
                    by,
                    application,
                    grant_id,
                    now,
                    version,
                    OPEN,
                    deadline,
                    None,
                    None,
                    None,
                    None,
                    None,
                    now,
                ),
            )
            self._event(
                dispute_id,
                now,
                by,
                "file",
                None,
                OPEN,
                evidence,
                {"field": field, "proposed_value": proposed_value, "version": version},
            )
        return self.get(dispute_id), True

    def answer(
        self,
        dispute_id: str,
        *,
        confirm: bool,
        by: str,
        reason: str,
        department: str | None,
        now: datetime,
    ) -> Dispute:
        """The provider confirms (corrected at source) or rejects (with a reason).
        ``department``: the answering department (None: the data bureau acting for it).
        Raises DisputeNotFoundError (someone else's too) or DisputeError."""
        reason = _text("reason", reason, required=not confirm) or (reason or "").strip()
        by = _text("by", by)
        with self.store.transaction():
            dispute = self.get(dispute_id)
            if department is not None and dispute.provider != department:
                raise DisputeNotFoundError(f"no dispute {dispute_id[:64]!r}")
            if dispute.status != OPEN:
                raise DisputeError(f"{dispute_id} is {dispute.status} already")
            after = CONFIRMED if confirm else REJECTED
            self.store.execute(
                "UPDATE ops.disputes SET status = ?, answered_at = ?, answered_by = ?, "
                "answer_reason = ?, updated_at = ? WHERE dispute_id = ?",
                (after, now, by, reason or None, now, dispute_id),
            )
            self._event(
                dispute_id,
                now,
                by,
                "confirm" if confirm else "reject",
                OPEN,
                after,
                reason or None,
                {"on_time": now <= dispute.deadline},
            )
        return self.get(dispute_id)

    def settle_corrections(
        self,
        resource: Resource,
        version: int,
        value_of: Callable[[tuple[str, ...], str], tuple[bool, str | None]],
        now: datetime,
    ) -> list[Dispute]:
        """After ``version`` of ``resource`` is published: each confirmed dispute whose
        record now holds another value than the disputed one is ``corrected``.
        ``value_of(key, field)`` gives (record found, value as text)."""
        settled = []
        for dispute in self.disputes(resource=resource.code, statuses=(CONFIRMED,)):
            found, value = value_of(dispute.record_key, dispute.field)
            if found and value == dispute.published_value:
                continue  # still the disputed value: the fix has not arrived yet
            with self.store.transaction():
                self.store.execute(
                    "UPDATE ops.disputes SET status = ?, corrected_version = ?, updated_at = ? "
                    "WHERE dispute_id = ? AND status = ?",
                    (CORRECTED, version, now, dispute.dispute_id, CONFIRMED),
                )
                self._event(
                    dispute.dispute_id,
                    now,
                    "hub:publish",
                    "corrected",
                    CONFIRMED,
                    CORRECTED,
                    f"v{version} holds {value!r}"
                    if found
                    else f"v{version} no longer holds the record",
                )
            settled.append(self.get(dispute.dispute_id))
        return settled

    def escalate_overdue(self, now: datetime) -> list[Dispute]:
        """Open disputes past their deadline, not escalated yet: escalated now (once)."""
        escalated = []
        for dispute in self.disputes(statuses=(OPEN,)):
            if dispute.deadline > now or dispute.escalated_at is not None:
                continue
            with self.store.transaction():
                self.store.execute(
                    "UPDATE ops.disputes SET escalated_at = ?, updated_at = ? "
                    "WHERE dispute_id = ? AND escalated_at IS NULL",
                    (now, now, dispute.dispute_id),
                )
                self._event(
                    dispute.dispute_id,
                    now,
                    "hub:maintenance",
                    "escalate",
                    OPEN,
                    OPEN,
                    "overdue: escalated to the data bureau",
                )
            escalated.append(self.get(dispute.dispute_id))
        return escalated


# ------------------------------------------------------------------ notifications


def notify(
    store: OpsStore,
    settings: Any,
    catalog: Catalog,
    dispute: Dispute,
    threshold: str,
    now: datetime,
) -> int:
    """Queue the provider's notice (``dispute_filed``) or the data bureau's escalation
    (``dispute_overdue``) in the reminders' outbox, once per channel. Returns rows added."""
    from hub.portal.reminders import channels
    from hub.portal.users import Role, users

    resource = catalog.resource(dispute.resource)
    deadline = f"{to_local(dispute.deadline):%Y-%m-%d %H:%M}"
    link = (
        f"{settings.portal_url.rstrip('/')}/portal/disputes/{dispute.dispute_id}"
        if settings.portal_url
        else ""
    )
    if threshold == OVERDUE:
        subject = f"【督办】数据疑义 {dispute.dispute_id} 已超期未答复 / overdue dispute"
        lead = f"{dispute.provider} 未在 {deadline}（北京时间）前答复数据疑义，已提交数据局督办。"
    else:
        subject = f"【疑义】{resource.name_zh} 数据疑义 {dispute.dispute_id} / dispute filed"
        lead = f"请于 {deadline}（北京时间）前核实并答复（确认更正或说明理由驳回）。"
    body = "\n".join(
        line
        for line in (
            lead,
            "",
            f"信息资源：{resource.name_zh}（{dispute.resource}）",
            f"记录：{', '.join(dispute.record_key)}",
            f"字段：{resource.field(dispute.field).name_zh}（{dispute.field}）",
            f"提出方：{dispute.filed_by}",
            f"办理：{link}" if link else "",
            "",
            f"Dispute {dispute.dispute_id} on {dispute.resource}.{dispute.field} "
            f"({dispute.provider}): answer by {deadline} (Beijing time).",
        )
        if line
    )
    added = 0
    for channel in channels(settings):
        if channel == "email":
            wanted = {Role.data_bureau} if threshold == OVERDUE else {Role.department}
            recipients = sorted(
                {
                    u.email
                    for u in users(store)
                    if u.email
                    and u.role in wanted
                    and (u.role is Role.data_bureau or u.department == dispute.provider)
                }
                | {a.strip() for a in settings.reminder_email_to.split(",") if a.strip()}
            )
        else:
            recipients = [settings.reminder_webhook_url]
        with store.transaction():
            if store.query(
                "SELECT 1 FROM ops.reminder_outbox WHERE demand_id = ? AND threshold = ? "
                "AND channel = ?",
                (dispute.dispute_id, threshold, channel),
            ):
                continue
            store.execute(
                "INSERT INTO ops.reminder_outbox (reminder_id, demand_id, threshold, channel, "
                "recipients, subject, body, created_at, sent_at, attempts, last_error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, NULL)",
                (
                    f"RM-{secrets.token_hex(6).upper()}",
                    dispute.dispute_id,
                    threshold,
                    channel,
                    json.dumps(recipients, ensure_ascii=False),
                    subject,
                    body,
                    now,
                ),
            )
        added += 1
    return added


FLAGS_FRESH_S = 1.0  # how long a server process keeps a resource's dispute flags


class DisputeFlags:
    """A server process's reader of flags: one kept ops connection, under a lock (the
    connection is not thread-safe). A resource's flags are read once per
    :data:`FLAGS_FRESH_S` (the lookup is the API's hot path: not a query per request),
    and at once after this process files or answers a dispute (:meth:`forget`); a dispute
    filed by another process (the portal, another worker) shows within that second.
    Verification (:meth:`for_subject`) always asks the store."""

    def __init__(self, settings: Any, catalog: Catalog) -> None:
        import threading

        self.settings, self.catalog = settings, catalog
        self._lock = threading.Lock()
        self._store: Any = None
        self._flags: dict[str, tuple[float, dict[tuple[str, ...], list[dict[str, Any]]]]] = {}

    def forget(self) -> None:
        """Drop the kept flags (after a dispute is filed or answered here)."""
        self._flags = {}

    def _book(self) -> DisputeBook:
        if self._store is None:
            from hub.storage.interface import open_ops_connection

            self._store = open_ops_connection(self.settings)
        return DisputeBook(self._store, self.catalog)

    def flags(self, resource: str) -> dict[tuple[str, ...], list[dict[str, Any]]]:
        now = time.monotonic()
        kept = self._flags.get(resource)
        if kept is not None and now - kept[0] < FLAGS_FRESH_S:
            return kept[1]
        with self._lock:
            found = self._book().flags(resource)
        self._flags[resource] = (now, found)
        return found

    def for_subject(
        self, resource: str, subject: str, fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        with self._lock:
            return self._book().flags_for_subject(resource, subject, fields)

    def current(
        self, resource: str
    ) -> tuple[int, datetime | None, dict[tuple[str, ...], list[dict[str, Any]]]]:
        """The revision and flags of ``resource`` read together from the store, not kept
        (the shared disputes table: a version must name exactly its rows)."""
        with self._lock:
            book = self._book()
            count, last = book.revision(resource)
            return count, last, book.flags(resource)

    def count(self, resource: str) -> int:
        with self._lock:
            marks = ", ".join("?" for _ in FLAGGED)
            rows = self._book().store.query(
                f"SELECT count(*) FROM ops.disputes WHERE resource = ? AND status IN ({marks})",
                (resource, *FLAGGED),
            )
            return int(rows[0][0])

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def escalate_and_notify(
    store: OpsStore, catalog: Catalog, settings: Any, now: datetime
) -> list[tuple[str, str, str]]:
    """Escalate overdue disputes (once each), queue the data bureau's notice and audit
    it: what ``hub reminders send`` and the maintenance DAG run. Returns (dispute,
    threshold, channel) rows queued, like :func:`hub.portal.reminders.queue_reminders`."""
    from hub.portal.reminders import channels
    from hub.quality.audit import record_event

    queued: list[tuple[str, str, str]] = []
    for dispute in DisputeBook(store, catalog).escalate_overdue(now):
        if notify(store, settings, catalog, dispute, OVERDUE, now):
            queued += [(dispute.dispute_id, OVERDUE, c) for c in channels(settings)]
        record_event(
            settings,
            "quality:dispute_escalated",
            caller="hub:maintenance",
            resource=dispute.resource,
            purpose=f"{dispute.dispute_id}: {dispute.provider} did not answer by "
            f"{dispute.deadline.isoformat(' ')} UTC",
            fields=(dispute.field,),
        )
    return queued
