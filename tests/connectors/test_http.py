"""HTTP connector against the simulated registry API served by uvicorn on loopback."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from connectors.base import ConnectorError, SyncState
from connectors.http import HttpConnector, HttpExtraction
from connectors.sftp import SftpConnector
from hub.catalog import Catalog, Resource
from hub.settings import Settings
from simulator.registry_api import create_app, create_registry_tables
from simulator.servers import BackgroundApi, ensure_registry_token, running_systems
from simulator.settings import SimulatorSettings
from simulator.sftp_server import ensure_sftp_keys

TOKEN = "test-token-6f1d0c"
BASE_TIME = datetime(2025, 3, 1, 0, 0, 0)
PERSONS = 50
DELETED = {3, 17}
BAD_BIRTH_DATE = 20  # 1990-02-30 cannot be parsed
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def citizen_id(sequence: int) -> str:
    """A valid 18-digit GB 11643 number for a person born 1990-01-01 in Zhushan district."""
    body = f"36020319900101{sequence:03d}"
    total = sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def person(i: int, updated: datetime, **changes: Any) -> dict[str, Any]:
    row = {
        "citizen_id": citizen_id(i),
        "name": f"居民{i}",
        "sex": "1" if i % 2 else "2",
        "birth_date": "1990-02-30" if i == BAD_BIRTH_DATE else "1990-01-01",
        "ethnicity": "汉族",
        "district_code": "360203",
        "household_address": f"江西省景德镇市珠山区新厂路{i}号",
        "registration_status": "正常",
        "updated_at": stamp(updated),
        "deleted": 1 if i in DELETED else 0,
    }
    row.update(changes)
    return row


def enterprise(i: int, updated: datetime) -> dict[str, Any]:
    return {
        "credit_code": f"91360200MA{i:07d}X",
        "name": f"景德镇市陶瓷企业{i}有限公司",
        "legal_representative_id": citizen_id(i % 999),
        "legal_representative_name": f"法人{i}",
        "enterprise_type": "有限责任公司",
        "registered_capital": "abc" if i == 7 else f"{100 + i}.50",
        "established_date": "2010-05-20",
        "address": "江西省景德镇市昌江区",
        "status": "存续",
        "updated_at": stamp(updated),
        "deleted": 0,
    }


def upsert(db: Path, table: str, rows: list[dict[str, Any]]) -> None:
    with closing(sqlite3.connect(db)) as connection:
        columns = list(rows[0])
        marks = ", ".join("?" for _ in columns)
        connection.executemany(
            f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            [tuple(row[c] for c in columns) for row in rows],
        )
        connection.commit()


def build_registry_db(db: Path, catalog: Catalog, enterprises: int = 0) -> None:
    with closing(sqlite3.connect(db)) as connection:
        create_registry_tables(
            connection, [catalog.resource("persons"), catalog.resource("enterprises")]
        )
    # one person every 30 minutes: the last one is the watermark
    upsert(
        db, "persons", [person(i, BASE_TIME + timedelta(minutes=30 * i)) for i in range(PERSONS)]
    )
    if enterprises:
        upsert(
            db,
            "enterprises",
            [enterprise(i, BASE_TIME + timedelta(seconds=i)) for i in range(enterprises)],
        )


@pytest.fixture
def registry_db(tmp_path: Path, catalog: Catalog) -> Path:
    db = tmp_path / "registry.db"
    build_registry_db(db, catalog, enterprises=2500)
    return db


@pytest.fixture
def start_registry(registry_db: Path) -> Iterator[Callable[..., str]]:
    """Start the registry API (uvicorn thread, free port); returns its base URL."""
    running: list[BackgroundApi] = []

    def start(*, fault_every: int = 0, token: str = TOKEN) -> str:
        app = create_app(registry_db, token, fault_every=fault_every, retry_after_s=0)
        api = BackgroundApi(app).start()
        running.append(api)
        return f"{api.url}/api/v1"

    yield start
    for api in running:
        api.stop()


@pytest.fixture
def persons(catalog: Catalog) -> Resource:
    return catalog.resource("persons")


@pytest.fixture
def enterprises(catalog: Catalog) -> Resource:
    return catalog.resource("enterprises")


def read_all(extraction: HttpExtraction) -> pa.Table:
    batches = list(extraction.batches())
    return pa.Table.from_batches(batches) if batches else pa.table({})


def test_pages_tombstones_and_quarantine(
    start_registry: Callable[..., str], connector_settings: Settings, persons: Resource
) -> None:
    url = start_registry()
    with HttpConnector.from_uri(url, TOKEN, connector_settings, page_size=7) as http:
        extraction = http.extract(persons, SyncState(), full=False)
        table = read_all(extraction)

    assert extraction.rows_read == PERSONS
    assert table.num_rows == PERSONS - 1
    ops = dict(
        zip(table.column("citizen_id").to_pylist(), table.column("_op").to_pylist(), strict=True)
    )
    assert {k for k, op in ops.items() if op == "delete"} == {citizen_id(i) for i in DELETED}
    deleted = table.filter(pa.compute.equal(table.column("_op"), "delete"))
    assert deleted.column("name").to_pylist() == [None, None]
    assert deleted.column("updated_at").null_count == 0
    assert table.column("updated_at").to_pylist()[0] == BASE_TIME
    # the one bad record: origin is its page (no token), line its index in that page
    [bad] = extraction.quarantined
    assert bad.origin.startswith(f"{url}/persons?")
    assert "limit=7" in bad.origin and "after=" in bad.origin
    assert TOKEN not in bad.origin
    assert bad.line == BAD_BIRTH_DATE % 7
    assert bad.reason == "field birth_date: expected a date (YYYY-MM-DD), got '1990-02-30'"
    assert citizen_id(BAD_BIRTH_DATE) in bad.raw
    last = stamp(BASE_TIME + timedelta(minutes=30 * (PERSONS - 1)))
    assert extraction.watermark_range() == (f"{stamp(BASE_TIME)}.000000", f"{last}.000000")
    state = extraction.next_state()
    assert state.watermark == f"{last}.000000"
    assert state.runs == 1


def test_incremental_with_overlap_catches_late_updates_once(
    start_registry: Callable[..., str],
    connector_settings: Settings,
    persons: Resource,
    registry_db: Path,
) -> None:
    url = start_registry()
    watermark = BASE_TIME + timedelta(minutes=30 * (PERSONS - 1))
    with HttpConnector.from_uri(url, TOKEN, connector_settings, page_size=7) as http:
        first = http.extract(persons, SyncState(), full=False)
        assert read_all(first).num_rows == PERSONS - 1
        state = first.next_state()

        # a record committed late, stamped 10 minutes before the watermark,
        # and an old record updated after it
        late = person(900, watermark - timedelta(minutes=10))
        updated = person(30, watermark + timedelta(minutes=5), household_address="新地址")
        upsert(registry_db, "persons", [late, updated])

        second = http.extract(persons, state, full=False)
        table = read_all(second)
        assert sorted(table.column("citizen_id").to_pylist()) == sorted(
            [late["citizen_id"], updated["citizen_id"]]
        )
        assert "新地址" in table.column("household_address").to_pylist()
        # the window (60 minutes) re-read 3 unchanged records; none landed twice
        assert second.rows_read == 5
        assert second.rows_already_landed == 3
        assert any("incremental read from" in n for n in second.notes)
        state = second.next_state()
        assert state.watermark == f"{stamp(updated_at_of(updated))}.000000"

        third = http.extract(persons, state, full=False)
        assert read_all(third).num_rows == 0
        assert third.next_state().runs == 3


def updated_at_of(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["updated_at"])


def test_batches_are_bounded_and_keys_are_live(
    start_registry: Callable[..., str],
    connector_settings: Settings,
    enterprises: Resource,
    persons: Resource,
) -> None:
    url = start_registry()
    with HttpConnector.from_uri(url, TOKEN, connector_settings, page_size=300) as http:
        extraction = http.extract(enterprises, SyncState(), full=True)
        sizes = [b.num_rows for b in extraction.batches()]
        assert max(sizes) <= connector_settings.batch_rows
        assert sum(sizes) == 2499
        [bad] = extraction.quarantined
        assert bad.reason == "field registered_capital: expected a decimal(18,2), got 'abc'"

        keys = pa.Table.from_batches(list(http.keys(persons)))
        assert keys.column_names == ["citizen_id"]
        assert keys.num_rows == PERSONS - len(DELETED)
        assert citizen_id(3) not in keys.column("citizen_id").to_pylist()


def test_retries_on_503_and_429_honour_retry_after(
    start_registry: Callable[..., str], hub_home: Path, persons: Resource
) -> None:
    clean_url = start_registry()
    faulty_url = start_registry(fault_every=2)
    # a backoff this long would show if Retry-After (0 s) were not honoured
    settings = Settings(batch_rows=1000, http_backoff_s=30.0, http_retries=3)
    with HttpConnector.from_uri(clean_url, TOKEN, settings, page_size=7) as http:
        expected = read_all(http.extract(persons, SyncState(), full=False))
    waits: list[float] = []
    with HttpConnector.from_uri(
        faulty_url, TOKEN, settings, page_size=7, sleep=waits.append
    ) as http:
        extraction = http.extract(persons, SyncState(), full=False)
        table = read_all(extraction)
    assert table.equals(expected)
    assert len(waits) >= 4
    assert set(waits) == {0.0}
    assert any("retried" in n for n in extraction.notes)

    # every request failing: retries run out with a clear message
    broken_url = start_registry(fault_every=1)
    with (
        HttpConnector.from_uri(broken_url, TOKEN, settings, sleep=waits.append) as http,
        pytest.raises(ConnectorError, match=r"gave up after 4 attempt\(s\): HTTP (503|429)"),
    ):
        read_all(http.extract(persons, SyncState(), full=False))


def test_connection_errors_back_off_exponentially(hub_home: Path, persons: Resource) -> None:
    with socket_closed_port() as port:
        settings = Settings(batch_rows=1000, http_backoff_s=0.5, http_retries=3)
        waits: list[float] = []
        with (
            HttpConnector.from_uri(
                f"http://127.0.0.1:{port}/api/v1", TOKEN, settings, sleep=waits.append
            ) as http,
            pytest.raises(ConnectorError, match="ConnectError"),
        ):
            read_all(http.extract(persons, SyncState(), full=False))
    assert waits == [0.5, 1.0, 2.0]


class socket_closed_port:  # noqa: N801 - used as a context manager
    """A port on 127.0.0.1 that nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


def test_refused_token(
    start_registry: Callable[..., str], connector_settings: Settings, persons: Resource
) -> None:
    url = start_registry()
    wrong = "wrong-token-1234567"
    with (
        HttpConnector.from_uri(url, wrong, connector_settings) as http,
        pytest.raises(ConnectorError, match="token was refused") as error,
    ):
        read_all(http.extract(persons, SyncState(), full=False))
    assert wrong not in str(error.value) and TOKEN not in str(error.value)
    with (
        HttpConnector.from_uri(url, None, connector_settings) as http,
        pytest.raises(ConnectorError, match="none is configured"),
    ):
        read_all(http.extract(persons, SyncState(), full=False))


def test_api_contract(start_registry: Callable[..., str]) -> None:
    url = start_registry()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{url}/health").json() == {"status": "ok", "database": "ok"}
    refused = httpx.get(f"{url}/persons")
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    assert httpx.get(f"{url}/persons", params={"limit": 5001}, headers=auth).status_code == 422
    assert httpx.get(f"{url}/persons", params={"after": "nope"}, headers=auth).status_code == 400
    bad_since = httpx.get(f"{url}/persons", params={"updated_since": "yesterday"}, headers=auth)
    assert bad_since.status_code == 400
    page = httpx.get(
        f"{url}/persons", params={"limit": 2, "updated_since": "2025-03-01T00:30:00"}, headers=auth
    ).json()
    assert [r["updated_at"] for r in page["data"]] == ["2025-03-01 00:30:00", "2025-03-01 01:00:00"]
    assert page["data"][0]["deleted"] is False
    following = httpx.get(
        f"{url}/persons", params={"limit": 2, "after": page["next"]}, headers=auth
    ).json()
    assert following["data"][0]["updated_at"] == "2025-03-01 01:30:00"
    assert following["data"][0]["deleted"] is True  # person 3


def test_running_systems_serve_the_default_connections(
    settings: Settings, catalog: Catalog
) -> None:
    """The embedded demo: both servers on the settings' ports, reached through the
    default connections (no HUB_CONN_* set)."""
    ports = SimulatorSettings()
    settings.systems_dir.mkdir(parents=True)
    build_registry_db(settings.systems_dir / "registry.db", catalog)
    token = ensure_registry_token(settings)
    assert settings.secret("registry") == token
    keys = ensure_sftp_keys(settings)
    day = keys.drops / "20250301"
    day.mkdir()
    (day / "enrollments_20250301.csv").write_text(
        "公民身份号码,姓名,险种,参保单位统一社会信用代码,参保日期,参保状态,更新时间\n"
        "360203199001010011,张三,失业保险,91360200MA35XXXX0A,2020-01-01,参保缴费,"
        "2025-03-01 08:00:00\n"
    )
    (day / "_SUCCESS").write_text("")
    with running_systems(settings):
        with HttpConnector.from_settings(settings) as http:
            table = read_all(http.extract(catalog.resource("persons"), SyncState(), full=False))
        assert table.num_rows == PERSONS - 1
        with SftpConnector.from_settings(settings) as sftp:
            extraction = sftp.extract(
                catalog.resource("social_insurance_enrollments"), SyncState(), full=False
            )
            rows = sum(b.num_rows for b in extraction.batches())
        assert rows == 1
        assert extraction.source == f"sftp://social@127.0.0.1:{ports.sim_sftp_port}/drops"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{ports.sim_registry_port}/api/v1/health", timeout=1)
