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
    verify_chain,
)
from hub.cli import app
from hub.evidence import EvidenceKey, load_evidence_key, public_key_set
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


def run_sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Tamper with the log directly: {log} and {anchor} name the tables, ? marks parameters."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///") :]) as conn:
            sql = statement.format(log="audit_log", anchor="audit_anchor")
            return conn.execute(sql, params).fetchall()
    with psycopg.connect(url, autocommit=True) as pg:
        sql = statement.format(log="ops.audit_log", anchor="ops.audit_anchor")
        cursor = pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


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
        "version, action, prev_hash, entry_hash) VALUES (?, ?, ?, ?, ?, 0, 200, 3, 'lookup', ?, ?)"
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

    # ... and the anchors re-signed with a key that is not the hub's
    other = EvidenceKey.generate()
    for seq, digest in run_sql(log_url, "SELECT seq, entry_hash FROM {log}"):
        fake = Anchor.sign(seq, digest, other, datetime.now(UTC))
        run_sql(
            log_url,
            "UPDATE {anchor} SET entry_hash = ?, key_id = ?, signature = ? WHERE seq = ?",
            (fake.entry_hash, fake.key_id, fake.signature, seq),
        )
    report = verify_chain(log_url, KEYS)
    assert report.problem is not None and report.problem.kind == "forged_anchor"
    assert verify_chain(log_url, None).ok  # unchecked signatures: why the key set matters


# ---------------------------------------------------------------- CLI


@pytest.fixture
def embedded_log(settings: Settings) -> str:
    url = audit_url(settings)
    assert url.endswith("ops/audit.sqlite")
    with AuditLog(url, load_evidence_key(settings), anchor_every_s=0) as log:
        for i in range(1, 6):
            log.append_sync(entry(i))
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
