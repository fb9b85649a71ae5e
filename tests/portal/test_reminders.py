"""Reminders over a real local SMTP server (aiosmtpd) and a real HTTP webhook receiver,
both started by the test: once per demand and threshold, failures kept and retried."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hub.catalog import Catalog
from hub.catalog.models import DemandSpec, RowScope
from hub.demand import DemandBook
from hub.portal.reminders import DUE_SOON, OVERDUE, run_reminders
from hub.portal.users import Role, add_user
from hub.settings import Settings, reset_settings
from hub.storage.interface import open_ops
from tests.conftest import free_port
from tests.demand.conftest import MONDAY


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[Any]]]:
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Inbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]], list[int]]]:
    received: list[dict[str, Any]] = []
    answer = [204]

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(answer[0])
            self.end_headers()
            if answer[0] < 300:
                received.append(json.loads(body))

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, answer
    finally:
        server.shutdown()
        server.server_close()


def test_reminders_go_once_per_demand_and_threshold_by_email_and_webhook(
    warehouse_url: str,
    catalog: Catalog,
    smtp_server: tuple[int, list[Any]],
    webhook: tuple[str, list[dict[str, Any]], list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, inbox = smtp_server
    url, posted, answer = webhook
    for name, value in {
        "HUB_REMINDER_CHANNELS": "email,webhook",
        "HUB_SMTP_HOST": "127.0.0.1",
        "HUB_SMTP_PORT": str(port),
        "HUB_SMTP_FROM": "hub@data.example.gov.cn",
        "HUB_REMINDER_WEBHOOK_URL": url,
        "HUB_REMINDER_EMAIL_TO": "duban@data.example.gov.cn",
        "HUB_PORTAL_URL": "https://hub.example.gov.cn",
    }.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    settings = Settings()
    with open_ops(settings) as store:
        add_user(
            store,
            "housing.officer",
            "a-long-password-1",
            Role.department,
            department="housing",
            email="officer@housing.example.gov.cn",
            by="t",
        )
        add_user(
            store,
            "tax.officer",
            "a-long-password-2",
            Role.department,
            department="tax",
            email="officer@tax.example.gov.cn",
            by="t",
        )
        book = DemandBook(store, catalog)
        spec = DemandSpec(
            scenario="second_hand_housing_transfer",
            resource="property_rights",
            fields=("certificate_no", "owner_id"),
            purpose="核验权属信息",
            legal_basis="《不动产登记暂行条例》",
            rows=RowScope.applicant,
        )
        demand, _ = book.submit("housing_transfer_window", spec, by="t", now=MONDAY)
        assert demand.deadline is not None
        # a week before the deadline: nothing is due
        queued, report = run_reminders(store, book, settings, demand.deadline - timedelta(days=7))
        assert queued == [] and report.sent == []
        # within 3 working days: due soon, once on each channel
        soon = demand.deadline - timedelta(days=1)
        queued, report = run_reminders(store, book, settings, soon)
        assert sorted(queued) == [
            (demand.demand_id, DUE_SOON, "email"),
            (demand.demand_id, DUE_SOON, "webhook"),
        ]
        assert len(report.sent) == 2 and report.failed == {}
        assert run_reminders(store, book, settings, soon + timedelta(hours=2))[0] == []
        # past the deadline, and the webhook answers 500: e-mail sent, webhook kept
        answer[0] = 500
        late = demand.deadline + timedelta(hours=1)
        queued, report = run_reminders(store, book, settings, late)
        assert sorted(q[1] for q in queued) == [OVERDUE, OVERDUE]
        assert len(report.sent) == 1 and len(report.failed) == 1
        assert "500" in next(iter(report.failed.values()))
        answer[0] = 204
        queued, report = run_reminders(store, book, settings, late + timedelta(hours=1))
        assert queued == [] and len(report.sent) == 1  # the retry
        rows = store.query(
            "SELECT threshold, channel, attempts, sent_at IS NOT NULL "
            "FROM ops.reminder_outbox ORDER BY threshold, channel"
        )
    assert [tuple(r) for r in rows] == [
        (DUE_SOON, "email", 1, True),
        (DUE_SOON, "webhook", 1, True),
        (OVERDUE, "email", 1, True),
        (OVERDUE, "webhook", 2, True),
    ]
    assert len(inbox) == 2
    first = inbox[0]
    assert sorted(first.rcpt_tos) == [
        "duban@data.example.gov.cn",
        "officer@housing.example.gov.cn",
    ]  # not the tax officer
    message = message_from_bytes(first.content)
    subject = str(make_header(decode_header(message["Subject"])))
    assert demand.demand_id in subject and "即将到期" in subject
    body = message.get_payload(decode=True).decode("utf-8")
    assert "https://hub.example.gov.cn/portal/demands/" + demand.demand_id in body
    assert [p["threshold"] for p in posted] == [DUE_SOON, OVERDUE]
    assert posted[1]["demand_id"] == demand.demand_id and "超期" in posted[1]["subject"]
