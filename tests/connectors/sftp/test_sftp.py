"""SFTP connector against real servers: OpenSSH's sshd and the embedded paramiko server."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import paramiko
import pyarrow as pa
import pytest

from connectors.base import ConnectorError, SyncState
from connectors.sftp import SftpConnector, SftpExtraction
from hub.catalog import Catalog, Resource
from hub.settings import Settings
from simulator.sftp_server import known_hosts_line, write_keypair

pytestmark = pytest.mark.sftp

ENROLL_HEADER = "公民身份号码,姓名,险种,参保单位统一社会信用代码,参保日期,参保状态,更新时间"
PENSION = "企业职工基本养老保险"
EMPLOYER = "91360200MA35XXXX0A"


def enrollment(citizen: str, name: str, day: str = "2020-01-01") -> str:
    return f"{citizen},{name},{PENSION},{EMPLOYER},{day},参保缴费,2025-01-01 09:00:00"


def write_drop(drops: Path, day: str, files: dict[str, bytes], *, complete: bool = True) -> Path:
    """Write a drop the way the department does: temporary name, rename, _SUCCESS last."""
    folder = drops / day
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        temporary = folder / f".{name}.tmp"
        temporary.write_bytes(content)
        temporary.rename(folder / name)
    if complete:
        (folder / "_SUCCESS").write_bytes(b"")
    return folder


def csv_bytes(lines: list[str], encoding: str = "utf-8") -> bytes:
    return ("\n".join(lines) + "\n").encode(encoding)


def read_all(extraction: SftpExtraction) -> pa.Table:
    batches = list(extraction.batches())
    schema = batches[0].schema if batches else None
    return pa.Table.from_batches(batches, schema=schema) if batches else pa.table({})


def connector(site: Any, settings: Settings, **options: Any) -> SftpConnector:
    return SftpConnector.from_uri(site.uri, settings, **options)


@pytest.fixture
def enrollments(catalog: Catalog) -> Resource:
    return catalog.resource("social_insurance_enrollments")


@pytest.fixture
def contributions(catalog: Catalog) -> Resource:
    return catalog.resource("social_insurance_contributions")


def test_reads_complete_drops_only_in_utf8_and_gbk(
    drop_site: Any, connector_settings: Settings, enrollments: Resource
) -> None:
    drops = drop_site.drops
    write_drop(
        drops,
        "20250101",
        {
            "enrollments_20250101.csv": csv_bytes(
                [
                    ENROLL_HEADER,
                    enrollment("360202199001011234", "张三"),
                    enrollment("36020219900101235X", "李四"),
                ]
            )
        },
    )
    write_drop(
        drops,
        "20250102",
        {
            "enrollments_20250102.csv": csv_bytes(
                [ENROLL_HEADER, enrollment("360202198502023456", "王五", "2019-07-01")], "gbk"
            ),
            "contributions_20250102.csv": b"not this resource\n",
        },
    )
    # written but not finished: no _SUCCESS, one file still under its temporary name
    unfinished = write_drop(
        drops,
        "20250103",
        {"enrollments_20250103.csv": csv_bytes([ENROLL_HEADER, enrollment("1", "赵六")])},
        complete=False,
    )
    (unfinished / ".enrollments_more.csv.tmp").write_bytes(b"partial")
    (drops / "README").write_text("not a drop")

    with connector(drop_site, connector_settings) as sftp:
        extraction = sftp.extract(enrollments, SyncState(), full=False)
        table = read_all(extraction)

    assert table.column("citizen_id").to_pylist() == [
        "360202199001011234",
        "36020219900101235X",
        "360202198502023456",
    ]
    assert table.column("name").to_pylist() == ["张三", "李四", "王五"]
    assert table.column("start_date").to_pylist()[-1] == date(2019, 7, 1)
    assert table.column("updated_at").to_pylist()[0] == datetime(2025, 1, 1, 9, 0)
    assert set(table.column("_op").to_pylist()) == {"upsert"}
    assert extraction.quarantined == []
    assert extraction.rows_read == 3
    assert extraction.watermark_range() == ("20250101", "20250102")
    day1 = f"{drop_site.remote_dir}/20250101/enrollments_20250101.csv"
    day2 = f"{drop_site.remote_dir}/20250102/enrollments_20250102.csv"
    assert f"{day1}: read as utf-8 (valid UTF-8)" in extraction.notes
    assert any(n.startswith(f"{day2}: read as gb18030") for n in extraction.notes)
    assert "incomplete drops not read (no _SUCCESS yet): 20250103" in extraction.notes
    state = extraction.next_state()
    assert sorted(state.files) == [day1, day2]
    assert state.files[day2]["encoding"] == "gb18030"
    assert state.runs == 1


def test_alias_extra_column_and_quarantine_with_exact_lines(
    drop_site: Any, connector_settings: Settings, contributions: Resource
) -> None:
    lines = [
        # line 1: renamed column (alias 缴费工资基数) and an unknown column 备注
        "公民身份号码,险种,费款所属期,缴费工资基数,个人缴费金额,单位缴费金额,到账日期,更新时间,备注",
        "360202199001011234,养老,202501,5000.00,400.00,800.00,2025-01-15,2025-01-15 10:00:00,",
        # lines 3-4: one row whose quoted remark spans two lines
        '360202199001011234,医疗,202501,5000.00,100.00,400.00,2025-01-15,2025-01-15 10:00:00,"补缴',
        '说明"',
        "360202199001011234,失业,202501",  # line 5: 3 columns instead of 9
        "360202198502023456,养老,202501,6000.00,480.00,960.00,2025-02-30,2025-01-15 10:00:00,",
        "360202198502023456,医疗,202501,6000.00,四百,480.00,2025-01-15,2025-01-15 10:00:00,",
        "",  # line 8: blank
        "36020219900101235X,养老,202501,4000.00,320.00,640.00,2025-01-16,2025-01-16 10:00:00,",
        "36020219900101235X,医疗,202501,4000,80,320,2025-01-16,2025-01-16 10:00:00,x,y",  # 10
    ]
    write_drop(drop_site.drops, "20250115", {"contributions_20250115.csv": csv_bytes(lines, "gbk")})

    with connector(drop_site, connector_settings) as sftp:
        extraction = sftp.extract(contributions, SyncState(), full=False)
        table = read_all(extraction)

    assert table.column("insurance_type").to_pylist() == ["养老", "医疗", "养老"]
    assert table.column("contribution_base").to_pylist() == [
        Decimal("5000.00"),
        Decimal("5000.00"),
        Decimal("4000.00"),
    ]
    origin = f"{drop_site.remote_dir}/20250115/contributions_20250115.csv"
    found = [(q.origin, q.line, q.reason) for q in extraction.quarantined]
    assert found == [
        (origin, 5, "expected 9 columns, got 3"),
        (origin, 6, "field paid_date: expected a date (YYYY-MM-DD), got '2025-02-30'"),
        (origin, 7, "field personal_amount: expected a decimal(12,2), got '四百'"),
        (origin, 10, "expected 9 columns, got 10"),
    ]
    assert extraction.quarantined[0].raw == "360202199001011234,失业,202501"
    assert "四百" in extraction.quarantined[2].raw
    assert extraction.rows_read == 7
    notes = "\n".join(extraction.notes)
    assert "column '缴费工资基数' read as '缴费基数' (contribution_base)" in notes
    assert "unknown column(s) '备注' ignored" in notes
    assert "1 blank line(s) skipped" in notes
    assert "read as gb18030" in notes


def test_missing_columns(
    drop_site: Any, connector_settings: Settings, enrollments: Resource
) -> None:
    # an optional column may be missing (left empty, noted)
    write_drop(
        drop_site.drops,
        "20250101",
        {
            "enrollments_20250101.csv": csv_bytes(
                [
                    "\ufeff公民身份号码,姓名,险种,参保单位统一社会信用代码,参保日期,更新时间",
                    f"360202199001011234,张三,{PENSION},{EMPLOYER},2020-01-01,2025-01-01 09:00:00",
                ]
            )
        },
    )
    with connector(drop_site, connector_settings) as sftp:
        extraction = sftp.extract(enrollments, SyncState(), full=False)
        table = read_all(extraction)
        assert table.column("status").to_pylist() == [None]
        assert table.column("citizen_id").to_pylist() == ["360202199001011234"]
        assert any("'参保状态' (status) is missing" in n for n in extraction.notes)
        assert any("read as utf-8 (UTF-8 byte-order mark)" in n for n in extraction.notes)

        # a required one may not: the error names the file and the column
        write_drop(
            drop_site.drops,
            "20250102",
            {
                "enrollments_20250102.csv": csv_bytes(
                    ["姓名,险种,参保日期,更新时间", "张三,养老,2020-01-01,2025-01-01 09:00:00"]
                )
            },
        )
        state = extraction.next_state()
        extraction = sftp.extract(enrollments, state, full=False)
        with pytest.raises(ConnectorError) as error:
            read_all(extraction)
    message = str(error.value)
    assert "20250102/enrollments_20250102.csv" in message
    assert "'公民身份号码' (citizen_id)" in message


def test_processed_files_are_remembered(
    drop_site: Any, connector_settings: Settings, enrollments: Resource
) -> None:
    drops = drop_site.drops
    first = [ENROLL_HEADER, enrollment("360202199001011234", "张三")]
    write_drop(drops, "20250101", {"enrollments_20250101.csv": csv_bytes(first)})
    write_drop(
        drops,
        "20250102",
        {"enrollments_20250102.csv": csv_bytes([ENROLL_HEADER, enrollment("2", "李四")], "gbk")},
    )
    downloads: list[str] = []

    def count(path: str, done: int, size: int) -> None:
        if done == size:
            downloads.append(path)

    with connector(drop_site, connector_settings, progress=count) as sftp:
        run1 = sftp.extract(enrollments, SyncState(), full=False)
        assert read_all(run1).num_rows == 2
        state1 = run1.next_state()

        downloads.clear()
        run2 = sftp.extract(enrollments, state1, full=False)
        assert read_all(run2).num_rows == 0
        assert downloads == []  # unchanged size and mtime: not even downloaded
        assert run2.files_skipped == 2
        assert run2.watermark_range() == (None, None)
        state2 = run2.next_state()
        assert state2.files == state1.files
        assert state2.runs == 2

        # the department re-delivers day 1 with one more row: read again, and noted
        changed = drops / "20250101" / "enrollments_20250101.csv"
        changed.write_bytes(csv_bytes([*first, enrollment("3", "王五")]))
        run3 = sftp.extract(enrollments, state2, full=False)
        table = read_all(run3)
        assert table.column("citizen_id").to_pylist() == ["360202199001011234", "3"]
        day1 = f"{drop_site.remote_dir}/20250101/enrollments_20250101.csv"
        assert run3.files_read == [day1]
        assert any(n.startswith(f"{day1}: changed since it was read") for n in run3.notes)
        state3 = run3.next_state()
        assert state3.files[day1]["sha256"] == hashlib.sha256(changed.read_bytes()).hexdigest()
        assert state3.files[day1]["size"] == changed.stat().st_size

        # a state written without mtimes: the content decides (same sha256: skipped)
        no_mtime = SyncState(
            files={k: {"size": v["size"], "sha256": v["sha256"]} for k, v in state3.files.items()}
        )
        run4 = sftp.extract(enrollments, no_mtime, full=False)
        assert read_all(run4).num_rows == 0
        assert run4.files_skipped == 2

        # full re-reads every complete drop
        run5 = sftp.extract(enrollments, state3, full=True)
        assert read_all(run5).num_rows == 3
        assert run5.watermark_range() == ("20250101", "20250102")


def test_next_state_needs_every_batch(
    drop_site: Any, connector_settings: Settings, enrollments: Resource
) -> None:
    write_drop(
        drop_site.drops,
        "20250101",
        {"enrollments_20250101.csv": csv_bytes([ENROLL_HEADER, enrollment("1", "张三")])},
    )
    with connector(drop_site, connector_settings) as sftp:
        extraction = sftp.extract(enrollments, SyncState(), full=False)
        with pytest.raises(ConnectorError, match="before batches"):
            extraction.next_state()
        with pytest.raises(NotImplementedError):
            next(iter(sftp.keys(enrollments)))


def test_host_key_mismatch_is_refused(
    drop_site: Any, connector_settings: Settings, enrollments: Resource, tmp_path: Path
) -> None:
    impostor = write_keypair(tmp_path / "impostor_key", "not the server")
    known_hosts = tmp_path / "known_hosts_wrong"
    known_hosts.write_text(known_hosts_line("127.0.0.1", drop_site.server.port, impostor) + "\n")
    uri = drop_site.uri.replace(str(drop_site.server.known_hosts), str(known_hosts))
    with (
        SftpConnector.from_uri(uri, connector_settings) as sftp,
        pytest.raises(ConnectorError) as error,
    ):
        sftp.extract(enrollments, SyncState(), full=False)
    assert "does not match" in str(error.value)
    assert "refusing to connect" in str(error.value)

    unknown = tmp_path / "known_hosts_empty"
    unknown.write_text("")
    uri = drop_site.uri.replace(str(drop_site.server.known_hosts), str(unknown))
    with (
        SftpConnector.from_uri(uri, connector_settings) as sftp,
        pytest.raises(ConnectorError, match=r"is not in .*known_hosts_empty"),
    ):
        sftp.extract(enrollments, SyncState(), full=False)


def test_wrong_client_key_is_refused(
    drop_site: Any, connector_settings: Settings, enrollments: Resource, tmp_path: Path
) -> None:
    write_keypair(tmp_path / "stranger", "unknown client")
    uri = drop_site.uri.replace(str(drop_site.server.key_file), str(tmp_path / "stranger"))
    with (
        SftpConnector.from_uri(uri, connector_settings) as sftp,
        pytest.raises(ConnectorError, match=r"authentication as .* was refused"),
    ):
        sftp.extract(enrollments, SyncState(), full=False)


def big_drop(drops: Path, rows: int) -> Path:
    lines = [ENROLL_HEADER]
    for i in range(rows):
        lines.append(enrollment(f"3602021990{i:08d}", f"参保人{i}", f"2020-{1 + i % 12:02d}-01"))
    lines[1234] = "broken,row"  # line 1235
    folder = write_drop(drops, "20250201", {"enrollments_20250201.csv": csv_bytes(lines, "gbk")})
    return folder / "enrollments_20250201.csv"


def cut_once(after_bytes: int, cut: Callable[[], None]) -> Callable[[str, int, int], None]:
    """A progress hook that drops the connection once, mid-download."""
    state = {"done": False}

    def hook(path: str, done: int, size: int) -> None:
        if not state["done"] and done >= after_bytes:
            state["done"] = True
            cut()

    return hook


def test_resume_after_a_dropped_connection(
    drop_site: Any, connector_settings: Settings, enrollments: Resource
) -> None:
    local = big_drop(drop_site.drops, 20_000)
    assert local.stat().st_size > 1_000_000
    with connector(drop_site, connector_settings) as sftp:
        clean = sftp.extract(enrollments, SyncState(), full=False)
        expected = read_all(clean)
        expected_state = clean.next_state()
    batch_sizes: list[int] = []

    holder: list[SftpConnector] = []

    def cut_transport() -> None:
        transport = holder[0].transport
        assert transport is not None
        transport.sock.shutdown(socket.SHUT_RDWR)

    with connector(
        drop_site, connector_settings, progress=cut_once(300_000, cut_transport)
    ) as sftp:
        holder.append(sftp)
        resumed = sftp.extract(enrollments, SyncState(), full=False)
        batches = list(resumed.batches())
        batch_sizes = [b.num_rows for b in batches]
        table = pa.Table.from_batches(batches)
    assert sftp.reconnects == 1
    assert table.equals(expected)
    assert expected.num_rows == 19_999
    assert max(batch_sizes) <= connector_settings.batch_rows
    assert [(q.line, q.raw) for q in resumed.quarantined] == [(1235, "broken,row")]
    assert resumed.next_state().files == expected_state.files
    assert any("connection dropped 1 time(s)" in n for n in resumed.notes)
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    assert next(iter(expected_state.files.values()))["sha256"] == digest


def test_retries_run_out(drop_site: Any, hub_home: Path, enrollments: Resource) -> None:
    big_drop(drop_site.drops, 20_000)
    settings = Settings(batch_rows=1000, http_backoff_s=0.0, sftp_retries=0)
    holder: list[SftpConnector] = []

    def cut_transport() -> None:
        transport = holder[0].transport
        assert transport is not None
        transport.close()

    with connector(drop_site, settings, progress=cut_once(100_000, cut_transport)) as sftp:
        holder.append(sftp)
        extraction = sftp.extract(enrollments, SyncState(), full=False)
        with pytest.raises(ConnectorError, match=r"failed after 1 attempt\(s\)"):
            read_all(extraction)


def test_embedded_server_drop_from_server_side_resumes(
    embedded_sftp: Any, connector_settings: Settings, enrollments: Resource
) -> None:
    server = embedded_sftp.embedded
    assert server is not None
    drops = server.root / "drops"
    big_drop(drops, 20_000)
    uri = embedded_sftp.uri("/drops")
    with SftpConnector.from_uri(
        uri, connector_settings, progress=cut_once(500_000, lambda: server.drop_connections())
    ) as sftp:
        extraction = sftp.extract(enrollments, SyncState(), full=False)
        table = read_all(extraction)
        assert sftp.reconnects >= 1
    assert table.num_rows == 19_999


def test_embedded_server_is_read_only_and_confined(
    embedded_sftp: Any, connector_settings: Settings, tmp_path: Path
) -> None:
    server = embedded_sftp.embedded
    assert server is not None
    (server.root / "drops").mkdir()
    (server.root / "drops" / "a.csv").write_text("x\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the root")
    os.symlink(outside, server.root / "drops" / "link")
    with SftpConnector.from_uri(embedded_sftp.uri("/drops"), connector_settings) as sftp:
        client = sftp._session()
        assert client.listdir("/../../drops") == ["a.csv", "link"]
        assert client.open("/drops/a.csv").read() == b"x\n"
        with pytest.raises(PermissionError):
            client.open("/drops/new.csv", "w")
        with pytest.raises(PermissionError):
            client.remove("/drops/a.csv")
        with pytest.raises(PermissionError):
            client.rename("/drops/a.csv", "/drops/b.csv")
        with pytest.raises(PermissionError):
            client.mkdir("/drops/x")
        with pytest.raises(FileNotFoundError):
            client.open("/drops/link")
        with pytest.raises(FileNotFoundError):
            client.stat("/../secret.txt")
    # password authentication is not offered at all
    transport = paramiko.Transport(("127.0.0.1", embedded_sftp.port))
    try:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.BadAuthenticationType):
            transport.auth_password("social", "anything")
    finally:
        transport.close()
