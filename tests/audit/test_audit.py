"""The audit chain on real PostgreSQL and SQLite files: append, concurrency, tampering."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from hub.audit import (
    GENESIS_HASH,
    Anchor,
    AuditEntry,
    AuditError,
    AuditLog,
    audit_url,
    current_anchor,
    entry_hash,
    load_anchor_signer,
    verify_chain,
)
from hub.cli import app
from hub.evidence import EvidenceKey, public_key_set
from hub.settings import Settings

KEY = EvidenceKey.generate()
KEYS = public_key_set(KEY)


@pytest.fixture(params=["sqlite", "postgres"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ops' / 'audit.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def entry(i: int, **changes: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "request_id": f"req-{i:05d}",
        "at": datetime(2026, 11, 24, 9, 0, tzinfo=UTC) + timedelta(milliseconds=i),
        "application": "one-stop-housing",
        "end_user": f"clerk-{i % 7}",
        "purpose": "二手房交易一件事",
        "scenario": "second_hand_sale",
        "resource": "property_rights",
        "version": 3,
        "action": "lookup",
        "fields": ["certificate_no", "owner_id", "share"],
        "row_count": i % 3,
        "result_sha256": f"{i:064x}",
        "status": 200,
        **changes,
    }
    return AuditEntry(**values)


def run_sql(
    url: str, statement: str, params: tuple[Any, ...] = (), *, as_owner: bool = True
) -> list[tuple[Any, ...]]:
    """Tamper with the log directly: {log} and {anchor} name the tables, ? marks parameters.
    ``as_owner``: as someone who can switch the append-only triggers off (the database
    owner); without it, as anyone else who can reach the tables."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///") :]) as conn:
            if as_owner:
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                ).fetchall():
                    conn.execute(f"DROP TRIGGER {name}")
            sql = statement.format(log="audit_log", anchor="audit_anchor")
            return conn.execute(sql, params).fetchall()
    with psycopg.connect(url, autocommit=True) as pg:
        if as_owner:
            pg.execute("SET session_replication_role = replica")  # triggers off
        sql = statement.format(log="ops.audit_log", anchor="ops.audit_anchor")
        cursor = pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def resign_anchors(url: str, key: Any) -> None:
    """An attacker's re-made anchor table: numbered, chained, matching the log, signed
    with ``key``."""
    rows = run_sql(url, "SELECT seq, entry_hash FROM {log} ORDER BY seq")
    heads = dict(rows)
    anchored = [seq for (seq,) in run_sql(url, "SELECT seq FROM {anchor} ORDER BY seq")]
    previous = None
    for number, seq in enumerate(anchored, start=1):
        fake = Anchor.sign(
            seq, heads[seq], key, datetime.now(UTC), anchor_no=number, prev_anchor=previous
        )
        run_sql(
            url,
            "UPDATE {anchor} SET entry_hash = ?, key_id = ?, signature = ?, anchor_no = ?, "
            "prev_anchor = ?, anchored_at = ?, reason = ? WHERE seq = ?",
            (fake.entry_hash, fake.key_id, fake.signature, number, previous,
             fake.anchored_at if not url.startswith("sqlite") else
             fake.anchored_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), fake.reason, seq),
        )  # fmt: skip
        previous = fake.digest()


def write_log(url: str, count: int, *, anchor_every_s: float = 0.0) -> list[str]:
    """``count`` entries, one batch each (append_sync); every batch anchored by default."""
    with AuditLog(url, KEY, anchor_every_s=anchor_every_s) as log:
        return [log.append_sync(entry(i)).entry_hash for i in range(1, count + 1)]


# ---------------------------------------------------------------- appending


def test_round_trip_and_restart(log_url: str) -> None:
    async def first_run() -> list[Any]:
        with AuditLog(log_url, KEY) as log:
            return list(await asyncio.gather(*(log.append(entry(i)) for i in range(1, 21))))

    receipts = asyncio.run(first_run())
    assert [r.seq for r in receipts] == list(range(1, 21))
    # a new writer (a restarted API) continues the chain from the stored head
    with AuditLog(log_url, KEY) as log:
        assert log.head == (20, receipts[-1].entry_hash)
        later = log.append_sync(entry(21, end_user=None, fields=[], result_sha256=None))
    assert later.seq == 21
    assert later.entry_hash == entry_hash(
        21, entry(21, end_user=None, fields=[], result_sha256=None), receipts[-1].entry_hash
    )
    report = verify_chain(log_url, KEYS, chunk_rows=7)
    assert report.ok, report.problem
    assert (report.entries, report.head_seq, report.head_hash) == (21, 21, later.entry_hash)
    assert report.signatures_checked and report.anchors >= 1 and report.unanchored == 0

    stored = run_sql(log_url, "SELECT seq, prev_hash, fields, purpose, at FROM {log} ORDER BY seq")
    assert stored[0][1] == GENESIS_HASH
    assert stored[0][3] == "二手房交易一件事"
    assert stored[1][1] == receipts[0].entry_hash


def test_hash_covers_every_column() -> None:
    base = entry(1)
    digest = entry_hash(1, base, GENESIS_HASH)
    variants = [
        entry(1, fields=["certificate_no", "owner_id"]),
        entry(1, fields=["certificate_no,owner_id", "share"]),
        entry(1, end_user=""),
        entry(1, end_user=None),
        entry(1, status=403),
        entry(1, version=None),
        entry(1, at=base.at + timedelta(microseconds=1)),
    ]
    assert len({digest, *(entry_hash(1, v, GENESIS_HASH) for v in variants)}) == 8
    assert entry_hash(2, base, GENESIS_HASH) != digest
    assert entry_hash(1, base, "1" * 64) != digest
    # the same instant in another zone is the same entry
    shifted = entry(1, at=base.at.astimezone(datetime.now().astimezone().tzinfo))
    assert entry_hash(1, shifted, GENESIS_HASH) == digest
    with pytest.raises(ValueError, match="naive"):
        entry(1, at=datetime(2026, 11, 24, 9, 0))


def test_concurrent_appends_from_two_writers(log_url: str) -> None:
    """500 appends from 50 tasks over two writer instances (two uvicorn workers)."""

    async def main() -> list[Any]:
        first = AuditLog(log_url, KEY, anchor_every_s=0.05).start()
        second = AuditLog(log_url, KEY, anchor_every_s=0.05).start()
        try:

            async def client(n: int) -> list[Any]:
                log = first if n % 2 else second
                return [await log.append(entry(n * 10 + k)) for k in range(10)]

            results = await asyncio.gather(*(client(n) for n in range(50)))
        finally:
            first.close()
            second.close()
        assert first.batches + second.batches < 500  # entries were grouped into batches
        return [r for rs in results for r in rs]

    receipts = asyncio.run(main())
    assert sorted(r.seq for r in receipts) == list(range(1, 501))
    report = verify_chain(log_url, KEYS)
    assert report.ok, report.problem
    assert report.entries == 500 and report.unanchored == 0
    ids = run_sql(log_url, "SELECT count(DISTINCT request_id) FROM {log}")
    assert ids == [(500,)]


def test_committed_before_append_returns(log_url: str) -> None:
    with AuditLog(log_url, KEY) as log:
        for i in range(1, 4):
            receipt = log.append_sync(entry(i))
            # a new connection sees the entry the moment append returns
            assert run_sql(log_url, "SELECT entry_hash FROM {log} WHERE seq = ?", (i,)) == [
                (receipt.entry_hash,)
            ]
    if log_url.startswith("sqlite"):
        assert run_sql(log_url, "PRAGMA journal_mode") == [("wal",)]


def test_failed_commit_fails_every_waiter_and_the_log_recovers(postgres_url: str) -> None:
    async def main() -> list[Any]:
        with AuditLog(postgres_url, KEY) as log:
            await log.append(entry(1))
            run_sql(postgres_url, "ALTER TABLE {log} ADD CONSTRAINT plausible CHECK (status < 600)")
            with pytest.raises(AuditError, match="not committed"):
                await log.append(entry(2, status=999))
            outcomes = await asyncio.gather(
                log.append(entry(3, status=999)),
                *(log.append(entry(i)) for i in range(4, 8)),
                return_exceptions=True,
            )
            assert isinstance(outcomes[0], AuditError)
            # whatever shared the failed batch failed too; nothing of it was stored
            failed = sum(isinstance(o, AuditError) for o in outcomes)
            later = await log.append(entry(8))  # the writer reconnected
            assert later.seq == 1 + len(outcomes) - failed + 1
            return list(outcomes)

    asyncio.run(main())
    report = verify_chain(postgres_url, KEYS)
    assert report.ok, report.problem
    assert run_sql(postgres_url, "SELECT count(*) FROM {log} WHERE status = 999") == [(0,)]


def test_closed_log_refuses(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite", KEY).start()
    log.close()
    with pytest.raises(AuditError, match="not running"):
        log.append_sync(entry(1))


# ---------------------------------------------------------------- tampering


def test_updated_entry_is_altered(log_url: str) -> None:
    write_log(log_url, 10)
    run_sql(log_url, "UPDATE {log} SET purpose = ? WHERE seq = 4", ("marketing",))
    report = verify_chain(log_url, KEYS)
    assert not report.ok and report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("altered", 4)
    assert report.problem.entry is not None and report.problem.entry["purpose"] == "marketing"
    assert report.entries == 4 and report.head_seq == 3


def test_deleted_middle_entry(log_url: str) -> None:
    write_log(log_url, 10)
    run_sql(log_url, "DELETE FROM {log} WHERE seq = 5")
    report = verify_chain(log_url, KEYS)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("deleted", 5)


def test_deleted_entry_with_renumbering(log_url: str) -> None:
    write_log(log_url, 10, anchor_every_s=3600)  # only the first batch and close anchor
    run_sql(log_url, "DELETE FROM {log} WHERE seq = 5")
    run_sql(log_url, "UPDATE {log} SET seq = seq + 1000 WHERE seq > 5")
    run_sql(log_url, "UPDATE {log} SET seq = seq - 1001 WHERE seq > 1000")
    report = verify_chain(log_url, KEYS)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("deleted", 5)


def test_inserted_forged_entries(log_url: str) -> None:
    hashes = write_log(log_url, 10)
    # spliced in at 6 with a correct hash and link; the later entries renumbered
    run_sql(log_url, "UPDATE {log} SET seq = seq + 1000 WHERE seq >= 6")
    run_sql(log_url, "UPDATE {log} SET seq = seq - 999 WHERE seq > 1000")
    insert = (
        "INSERT INTO {log} (seq, request_id, at, application, fields, row_count, status, "
        "version, action, prev_hash, entry_hash, format) "
        "VALUES (?, ?, ?, ?, ?, 0, 200, 3, 'lookup', ?, ?, 'exchange-hub/audit/v2')"
    )
    forged = AuditEntry(
        request_id="req-forged",
        at=datetime(2026, 11, 24, 9, 1, tzinfo=UTC),
        application="intruder",
        version=3,
        action="lookup",
    )

    def stored_values(seq: int, prev: str) -> tuple[Any, ...]:
        at: Any = forged.at
        fields: Any = []
        if log_url.startswith("sqlite"):
            at, fields = forged.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "[]"
        digest = entry_hash(seq, forged, prev)
        return (seq, forged.request_id, at, "intruder", fields, prev, digest)

    run_sql(log_url, insert, stored_values(6, hashes[4]))
    report = verify_chain(log_url, KEYS)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("inserted", 6)
    assert report.problem.entry is not None  # the entry after it, which skips it

    # appended at the end without the right link
    run_sql(log_url, "DELETE FROM {log} WHERE seq = 6")
    run_sql(log_url, "UPDATE {log} SET seq = seq + 1000 WHERE seq > 6")
    run_sql(log_url, "UPDATE {log} SET seq = seq - 1001 WHERE seq > 1000")
    assert verify_chain(log_url, KEYS).ok
    run_sql(log_url, insert, stored_values(11, "f" * 64))
    report = verify_chain(log_url, KEYS)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("inserted", 11)


def test_truncated_tail_is_caught_by_the_anchors(log_url: str) -> None:
    write_log(log_url, 10)
    kept = current_anchor(log_url, KEY)  # an auditor's copy of the head
    assert kept is not None and kept.seq == 10
    run_sql(log_url, "DELETE FROM {log} WHERE seq > 7")
    report = verify_chain(log_url, KEYS)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("truncated", 8)

    # cutting the newer anchors too: only an anchor kept outside sees it
    run_sql(log_url, "DELETE FROM {anchor} WHERE seq > 7")
    assert verify_chain(log_url, KEYS).ok
    report = verify_chain(log_url, KEYS, anchors=[kept])
    assert report.problem is not None and report.problem.kind == "truncated"


def test_rewritten_chain_and_forged_anchor(log_url: str) -> None:
    write_log(log_url, 6)
    # rewrite entry 3 and recompute every hash after it: the chain alone looks fine
    [(prev,)] = run_sql(log_url, "SELECT entry_hash FROM {log} WHERE seq = 2")
    for seq in range(3, 7):
        changed = entry(seq, purpose="rewritten") if seq == 3 else entry(seq)
        digest = entry_hash(seq, changed, prev)
        run_sql(
            log_url,
            "UPDATE {log} SET purpose = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
            (changed.purpose, prev, digest, seq),
        )
        prev = digest
    report = verify_chain(log_url, KEYS)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("altered", 3)
    assert "rewritten" in report.problem.message

    # ... and the anchors re-made and re-signed with a key that is not the hub's
    resign_anchors(log_url, EvidenceKey.generate())
    report = verify_chain(log_url, KEYS)
    assert report.problem is not None and report.problem.kind == "forged_anchor"
    assert verify_chain(log_url, None).ok  # unchecked signatures: why the key set matters


# ---------------------------------------------------------------- CLI


@pytest.fixture
def embedded_log(settings: Settings) -> str:
    url = audit_url(settings)
    assert url.endswith("ops/audit.sqlite")
    with AuditLog(url, load_anchor_signer(settings), anchor_every_s=0) as log:
        for i in range(1, 6):
            log.append_sync(entry(i, at=datetime.now(UTC)))
    return url


def test_cli_audit_verify(embedded_log: str) -> None:
    ok = CliRunner().invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "audit chain ok: 5 entries" in ok.output

    anchor = CliRunner().invoke(app, ["audit", "anchor"])
    assert anchor.exit_code == 0, anchor.output
    assert json.loads(anchor.output)["seq"] == 5

    run_sql(embedded_log, "UPDATE {log} SET row_count = 1000 WHERE seq = 2")
    broken = CliRunner().invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "BROKEN at seq 2 (altered)" in broken.output
    as_json = CliRunner().invoke(app, ["audit", "verify", "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.output)
    assert report["ok"] is False and report["problem"]["kind"] == "altered"
    assert report["problem"]["entry"]["row_count"] == 1000


def test_cli_audit_verify_with_a_kept_anchor(embedded_log: str, tmp_path: Path) -> None:
    kept = tmp_path / "anchor.json"
    saved = CliRunner().invoke(app, ["audit", "anchor", "--out", str(kept)])
    assert saved.exit_code == 0, saved.output
    run_sql(embedded_log, "DELETE FROM {log} WHERE seq > 3")
    run_sql(embedded_log, "DELETE FROM {anchor} WHERE seq > 3")
    assert CliRunner().invoke(app, ["audit", "verify"]).exit_code == 0
    result = CliRunner().invoke(app, ["audit", "verify", "--anchor", str(kept)])
    assert result.exit_code == 1
    assert "BROKEN at seq 4 (truncated)" in result.output


def test_cli_audit_verify_without_log(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "no audit log" in result.output


# ---------------------------------------------------------------- append-only, anchors


def test_the_tables_refuse_update_and_delete(log_url: str) -> None:
    write_log(log_url, 3)
    for statement in (
        "UPDATE {log} SET purpose = 'x' WHERE seq = 2",
        "DELETE FROM {log} WHERE seq = 3",
        "DELETE FROM {anchor}",
        "UPDATE {anchor} SET seq = 99",
    ):
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
            run_sql(log_url, statement, as_owner=False)
    if not log_url.startswith("sqlite"):
        with pytest.raises(psycopg.Error, match="append-only"):
            run_sql(log_url, "TRUNCATE {log}", as_owner=False)
    assert verify_chain(log_url, KEYS).ok


def test_the_api_role_can_only_append(postgres_url: str) -> None:
    import uuid

    from hub.audit import writer_role_sql

    role = f"hub_audit_{uuid.uuid4().hex[:8]}"
    write_log(postgres_url, 2)  # tables and triggers made by the owner
    run_sql(postgres_url, f'CREATE ROLE "{role}" LOGIN', as_owner=False)
    try:
        for statement in writer_role_sql(role):
            run_sql(postgres_url, statement, as_owner=False)
        as_role = postgres_url.replace("postgres@", f"{role}@")
        write_log(as_role, 3)  # the API's writer works as the role: reads head, appends
        assert verify_chain(postgres_url, KEYS).ok
        with psycopg.connect(as_role, autocommit=True) as pg:
            for statement in (
                "UPDATE ops.audit_log SET purpose = 'x'",
                "DELETE FROM ops.audit_anchor",
                "TRUNCATE ops.audit_log",
                "ALTER TABLE ops.audit_log DISABLE TRIGGER ALL",
                "SET session_replication_role = replica",
            ):
                with pytest.raises(psycopg.Error):
                    pg.execute(statement)
    finally:
        run_sql(postgres_url, f'DROP OWNED BY "{role}"', as_owner=False)
        run_sql(postgres_url, f'DROP ROLE "{role}"', as_owner=False)


def test_a_deleted_anchor_is_a_gap(log_url: str) -> None:
    write_log(log_url, 10)  # one anchor per batch
    numbers = run_sql(log_url, "SELECT anchor_no FROM {anchor} ORDER BY seq")
    assert [n for (n,) in numbers] == list(range(1, len(numbers) + 1))
    run_sql(log_url, "DELETE FROM {anchor} WHERE anchor_no = 4")
    report = verify_chain(log_url, KEYS)
    assert report.problem is not None and report.problem.kind == "missing_anchor"
    assert "anchor 4 is missing" in report.problem.message


def test_deleted_anchors_and_a_rewritten_chain_are_caught(log_url: str) -> None:
    """The attack of issue 10: delete the anchors, alter an entry, re-hash the chain."""
    with AuditLog(log_url, KEY, anchor_every_s=0.05) as log:
        for i in range(1, 6):
            log.append_sync(entry(i, at=datetime.now(UTC)))
    run_sql(log_url, "DELETE FROM {anchor}")
    [(prev,)] = run_sql(log_url, "SELECT entry_hash FROM {log} WHERE seq = 1")
    for seq in range(2, 6):
        [(at,)] = run_sql(log_url, "SELECT at FROM {log} WHERE seq = ?", (seq,))
        moment = at if isinstance(at, datetime) else datetime.fromisoformat(at.rstrip("Z"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        changed = entry(seq, at=moment, purpose="rewritten" if seq == 2 else "二手房交易一件事")
        digest = entry_hash(seq, changed, prev)
        run_sql(
            log_url,
            "UPDATE {log} SET purpose = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
            (changed.purpose, prev, digest, seq),
        )
        prev = digest
    assert verify_chain(log_url, KEYS).ok  # without the time rule nothing shows...
    later = datetime.now(UTC) + timedelta(minutes=5)
    report = verify_chain(log_url, KEYS, max_gap_s=60, now=later)
    assert report.problem is not None and report.problem.kind == "missing_anchor"
    assert "never anchored" in report.problem.message


def test_an_idle_writer_anchors_what_it_wrote(log_url: str) -> None:
    import time

    log = AuditLog(log_url, KEY, anchor_every_s=0.1).start()
    try:
        log.append_sync(entry(1, at=datetime.now(UTC)))
        log.append_sync(entry(2, at=datetime.now(UTC)))  # within the interval: no anchor
        time.sleep(0.6)
        [(anchored,)] = run_sql(log_url, "SELECT max(seq) FROM {anchor}")
        assert anchored == 2
        report = verify_chain(log_url, KEYS, max_gap_s=5)
        assert report.ok and report.unanchored == 0, report
    finally:
        log.close()


def test_exported_anchors_catch_a_cut_with_its_anchors(log_url: str, tmp_path: Path) -> None:
    from hub.audit import export_anchor, exported_anchors

    write_log(log_url, 8)
    folder = tmp_path / "kept-elsewhere"
    path = export_anchor(log_url, KEY, folder)
    assert path is not None and path.parent == folder
    run_sql(log_url, "DELETE FROM {log} WHERE seq > 5")
    run_sql(log_url, "DELETE FROM {anchor} WHERE seq > 5")
    assert verify_chain(log_url, KEYS).ok
    report = verify_chain(log_url, KEYS, anchors=exported_anchors(folder))
    assert report.problem is not None and report.problem.kind == "truncated"
    (folder / "anchor-bad.json").write_text("{}")
    with pytest.raises(ValueError, match=r"anchor-bad\.json"):
        exported_anchors(folder)


def test_entries_of_the_first_format_still_verify(log_url: str) -> None:
    """A log written before grants were named (format v1) verifies after the upgrade."""
    from hub.audit import FORMAT_V1

    with AuditLog(log_url, KEY, entry_format=FORMAT_V1) as log:
        for i in range(1, 4):
            log.append_sync(entry(i))
    with AuditLog(log_url, KEY) as log:
        log.append_sync(entry(4, grant_id="GR-1", caller_kind="application"))
    formats = run_sql(log_url, "SELECT format FROM {log} ORDER BY seq")
    assert [f for (f,) in formats] == [FORMAT_V1] * 3 + ["exchange-hub/audit/v2"]
    assert verify_chain(log_url, KEYS).ok


def test_cli_catches_deleted_anchors_by_time(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("HUB_AUDIT_ANCHOR_EVERY_S", "0.1")
    monkeypatch.setenv("HUB_AUDIT_ANCHOR_SLACK_S", "0")
    url = audit_url(settings)
    with AuditLog(url, load_anchor_signer(settings), anchor_every_s=0.1) as log:
        for i in range(1, 4):
            log.append_sync(entry(i, at=datetime.now(UTC)))
    assert CliRunner().invoke(app, ["audit", "verify"]).exit_code == 0
    run_sql(url, "DELETE FROM {anchor}")
    time.sleep(0.5)
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1 and "missing_anchor" in result.output, result.output
