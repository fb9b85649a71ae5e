"""Reminders (督办提醒) of demands nearing their deadline and overdue ones.

Two steps, both idempotent, run by the ``maintenance`` DAG (``hub reminders send`` by hand):

1. :func:`queue_reminders` puts one row per demand, threshold and channel in
   ``ops.reminder_outbox`` (a unique key makes it once per demand and threshold):
   ``due_soon`` when a pending demand's deadline falls within the next
   ``HUB_REMINDER_DUE_WORKING_DAYS`` working days (default 3), ``overdue`` once it passed.
2. :func:`send_outbox` sends what is unsent, by e-mail over SMTP (``HUB_SMTP_*``) to the
   providing department's and the data bureau's portal users that have an address, plus
   ``HUB_REMINDER_EMAIL_TO``, and/or as a JSON POST to ``HUB_REMINDER_WEBHOOK_URL``
   (``HUB_REMINDER_CHANNELS``: email, webhook or both). A failed send stays in the outbox
   with its error and is tried again next time, up to :data:`MAX_ATTEMPTS` times.
"""

from __future__ import annotations

import json
import secrets
import smtplib
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from hub.demand import Demand, DemandBook, DemandStatus
from hub.demand.calendar import to_local
from hub.portal.users import Role, users
from hub.settings import Settings
from hub.storage.interface import OpsStore

MAX_ATTEMPTS = 5
DUE_SOON = "due_soon"
OVERDUE = "overdue"


def channels(settings: Settings) -> list[str]:
    """The channels chosen in ``HUB_REMINDER_CHANNELS``."""
    return [c for c in settings.reminder_channels.split(",") if c]


def threshold_of(book: DemandBook, demand: Demand, now: datetime, due_days: int) -> str | None:
    """``overdue``, ``due_soon`` or None for a pending demand with a deadline."""
    if demand.status is not DemandStatus.pending or demand.deadline is None:
        return None
    if demand.deadline <= now:
        return OVERDUE
    if demand.deadline <= book.working_days.deadline(now, due_days):
        return DUE_SOON
    return None


def _message(book: DemandBook, demand: Demand, threshold: str, portal_url: str) -> tuple[str, str]:
    assert demand.deadline is not None
    deadline = f"{to_local(demand.deadline):%Y-%m-%d %H:%M}"
    resource = book.catalog.resource(demand.resource)
    application = book.catalog.application(demand.application)
    if threshold == OVERDUE:
        subject = f"【督办】数据需求 {demand.demand_id} 已超期未答复 / overdue"
        lead = (
            f"数据需求 {demand.demand_id} 已于 {deadline}（北京时间）超过答复期限，"
            "将按超时默许处理。"
        )
    else:
        subject = f"【提醒】数据需求 {demand.demand_id} 即将到期 / due soon"
        lead = f"数据需求 {demand.demand_id} 的答复期限为 {deadline}（北京时间），请及时审核。"
    link = f"{portal_url.rstrip('/')}/portal/demands/{demand.demand_id}" if portal_url else ""
    body = "\n".join(
        line
        for line in (
            lead,
            "",
            f"申请应用：{application.name_zh}（{demand.application}）",
            f"信息资源：{resource.name_zh}（{demand.resource}）",
            f"提供部门：{demand.provider}",
            f"申请字段：{', '.join(demand.fields)}",
            f"用途：{demand.purpose}",
            f"依据：{demand.legal_basis}",
            f"办理：{link}" if link else "",
            "",
            f"Demand {demand.demand_id} from {demand.application} for {demand.resource} "
            f"({demand.provider}) is {threshold.replace('_', ' ')}: deadline {deadline} "
            "(Beijing time).",
        )
        if line is not None
    )
    return subject, body


def _recipients(store: OpsStore, settings: Settings, demand: Demand) -> list[str]:
    found = [
        u.email
        for u in users(store)
        if u.email
        and (
            u.role is Role.data_bureau
            or (u.role is Role.department and u.department == demand.provider)
        )
    ]
    found += [a.strip() for a in settings.reminder_email_to.split(",") if a.strip()]
    return sorted(set(found))


def queue_reminders(
    store: OpsStore, book: DemandBook, settings: Settings, now: datetime
) -> list[tuple[str, str, str]]:
    """Queue what is due as of ``now`` (naive UTC); returns the (demand, threshold,
    channel) rows added (none for a reminder queued before)."""
    chosen = channels(settings)
    added: list[tuple[str, str, str]] = []
    if not chosen:
        return added
    for demand in book.demands(status=DemandStatus.pending):
        threshold = threshold_of(book, demand, now, settings.reminder_due_working_days)
        if threshold is None:
            continue
        subject, body = _message(book, demand, threshold, settings.portal_url)
        for channel in chosen:
            recipients = (
                _recipients(store, settings, demand)
                if channel == "email"
                else [settings.reminder_webhook_url]
            )
            with store.transaction():
                if store.query(
                    "SELECT 1 FROM ops.reminder_outbox WHERE demand_id = ? AND threshold = ? "
                    "AND channel = ?",
                    (demand.demand_id, threshold, channel),
                ):
                    continue
                store.execute(
                    "INSERT INTO ops.reminder_outbox (reminder_id, demand_id, threshold, "
                    "channel, recipients, subject, body, created_at, sent_at, attempts, "
                    "last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, NULL)",
                    (
                        f"RM-{secrets.token_hex(6).upper()}",
                        demand.demand_id,
                        threshold,
                        channel,
                        json.dumps(recipients, ensure_ascii=False),
                        subject,
                        body,
                        now,
                    ),
                )
            added.append((demand.demand_id, threshold, channel))
    return added


@dataclass
class SendReport:
    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed}


def _send_email(settings: Settings, recipients: list[str], subject: str, body: str) -> None:
    if not settings.smtp_host:
        raise RuntimeError("HUB_SMTP_HOST is not set")
    if not recipients:
        raise RuntimeError(
            "no recipient: give the department's or the data bureau's portal users an "
            "e-mail (hub user add --email), or set HUB_REMINDER_EMAIL_TO"
        )
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.secret("smtp"))
        smtp.send_message(message)


def _send_webhook(settings: Settings, payload: dict[str, Any]) -> None:
    import httpx

    if not settings.reminder_webhook_url:
        raise RuntimeError("HUB_REMINDER_WEBHOOK_URL is not set")
    answer = httpx.post(settings.reminder_webhook_url, json=payload, timeout=30)
    if answer.status_code >= 300:
        raise RuntimeError(f"the webhook answered {answer.status_code}: {answer.text[:200]}")


def send_outbox(store: OpsStore, settings: Settings, now: datetime) -> SendReport:
    """Send every unsent reminder (fewer than MAX_ATTEMPTS tries so far); each send is
    recorded (sent_at, or attempts and last_error)."""
    report = SendReport()
    rows = store.query(
        "SELECT reminder_id, demand_id, threshold, channel, recipients, subject, body "
        "FROM ops.reminder_outbox WHERE sent_at IS NULL AND attempts < ? "
        "ORDER BY created_at, reminder_id",
        (MAX_ATTEMPTS,),
    )
    for reminder_id, demand_id, threshold, channel, recipients, subject, body in rows:
        try:
            if channel == "email":
                _send_email(settings, list(json.loads(recipients)), subject, body)
            else:
                _send_webhook(
                    settings,
                    {
                        "reminder_id": reminder_id,
                        "demand_id": demand_id,
                        "threshold": threshold,
                        "subject": subject,
                        "text": body,
                    },
                )
        except Exception as exc:  # the outbox keeps it: tried again on the next run
            error = f"{type(exc).__name__}: {exc}"[:1000]
            store.execute(
                "UPDATE ops.reminder_outbox SET attempts = attempts + 1, last_error = ? "
                "WHERE reminder_id = ?",
                (error, reminder_id),
            )
            report.failed[reminder_id] = error
            continue
        store.execute(
            "UPDATE ops.reminder_outbox SET sent_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE reminder_id = ?",
            (now, reminder_id),
        )
        report.sent.append(reminder_id)
    return report


def run_reminders(
    store: OpsStore, book: DemandBook, settings: Settings, now: datetime
) -> tuple[list[tuple[str, str, str]], SendReport]:
    """Queue then send: what the maintenance DAG's ``send_reminders`` task does; overdue
    disputes (疑义) are escalated to the data bureau on the way (hub.quality.disputes)."""
    from hub.quality.disputes import escalate_and_notify

    queued = queue_reminders(store, book, settings, now)
    queued += escalate_and_notify(store, book.catalog, settings, now)
    return queued, send_outbox(store, settings, now)
