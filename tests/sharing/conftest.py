"""Bulk sharing under test: a published ``persons`` with grants and keys, ``hub serve``
running as a real HTTP server, and the stock ``delta-sharing`` client in an environment
of its own.

The stock client (1.4.2) pins pyarrow <= 23 and pandas < 3, which the hub's lock does not
allow, so it lives in a virtual environment of its own (:mod:`tests.sharing.stock_env`).

Versions are published through ``hub.publish.publish`` (which writes the shared files)
from candidates made here with known rows, so every answer is known.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub.catalog import Catalog
from hub.catalog.models import DemandSpec, RowScope
from hub.demand import DemandBook
from hub.keys import PrincipalKind, create_key
from hub.publish import PublishResult, publish
from hub.settings import Settings
from hub.sharing.arrow_io import arrow_type
from hub.storage.interface import CANDIDATE_COLUMNS, open_ops, open_warehouse
from hub.storage.sql import quote_ident
from tests.conftest import IN_CI, free_port, set_deployment_secrets
from tests.sharing.stock_env import ClientUnavailableError, ensure_client

APP, SCENARIO = "provident_fund_system", "provident_fund_loan"
OTHER_APP, OTHER_SCENARIO = "talent_housing", "talent_apartment"
GRANTED = ("citizen_id", "name", "birth_date", "registration_status", "updated_at")
MASKED = ("sex", "ethnicity", "household_address")  # personal, outside the grant
PERSONS = 2_500
FILE_ROWS = 1_000  # HUB_SHARING_FILE_ROWS here: three data files per version
T0 = datetime(2026, 11, 2, 8, 0, 0)


# ------------------------------------------------------------------ the stock client


@pytest.fixture(scope="session")
def stock_python() -> Path:
    """The python of an environment holding delta-sharing==1.4.2 (made once, cached)."""
    try:
        return ensure_client()
    except ClientUnavailableError as exc:
        if IN_CI:
            pytest.fail(f"the stock delta-sharing client is required in CI: {exc}")
        pytest.skip(f"the stock delta-sharing client is unavailable: {exc}")


@dataclass
class StockClient:
    """Runs plans of stock-client calls in its own environment."""

    python: Path
    folder: Path
    runs: int = 0

    def run(self, *steps: dict[str, Any]) -> list[dict[str, Any]]:
        self.runs += 1
        plan = self.folder / f"plan-{self.runs}.json"
        for i, step in enumerate(steps):
            step.setdefault("out", str(self.folder / f"out-{self.runs}-{i}.parquet"))
        plan.write_text(json.dumps(list(steps)))
        done = subprocess.run(
            [str(self.python), str(Path(__file__).with_name("stock_client.py")), str(plan)],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        outcomes: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
        for step, outcome in zip(steps, outcomes, strict=True):
            outcome["out"] = step["out"]
        return outcomes

    def frame(self, outcome: dict[str, Any]) -> pa.Table:
        assert outcome["ok"], outcome
        return pq.read_table(outcome["out"])


@pytest.fixture
def stock(stock_python: Path, tmp_path: Path) -> StockClient:
    folder = tmp_path / "client"
    folder.mkdir()
    return StockClient(stock_python, folder)


# ------------------------------------------------------------------ rows and versions


def person(i: int, **changes: Any) -> dict[str, Any]:
    """Person ``i``, deterministic; ``changes`` override fields."""
    row = {
        "citizen_id": f"36020219800101{i:04d}",
        "name": f"张{i}",
        "sex": "1" if i % 2 else "2",
        "birth_date": date(1950, 1, 1) + timedelta(days=i * 7),
        "ethnicity": "汉" if i % 10 else "回",
        "district_code": "360202" if i % 3 else "360203",
        "household_address": f"景德镇市珠山区新厂路{i}号" if i % 17 else None,
        "registration_status": "正常",
        "updated_at": T0 + timedelta(seconds=i),
    }
    row.update(changes)
    return row


def day_one() -> list[dict[str, Any]]:
    return [person(i) for i in range(1, PERSONS + 1)]


def day_two(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A day of changes: deletes, renames (a granted field), moves (district_code, not in
    the grant: no change of its table), a death (status), a masked field, inserts."""
    later = T0 + timedelta(days=1)
    changed = []
    for row in rows:
        i = int(row["citizen_id"][-4:])
        if i % 97 == 0:
            continue  # deleted
        if i % 53 == 0:
            row = {**row, "name": row["name"] + "改", "updated_at": later}
        elif i % 61 == 0:
            row = {**row, "district_code": "360281"}  # only a field outside every grant
        elif i % 71 == 0:
            row = {**row, "registration_status": "死亡", "updated_at": later}
        elif i % 89 == 0:
            row = {**row, "household_address": "景德镇市昌江区新地址", "updated_at": later}
        changed.append(row)
    newest = max(int(row["citizen_id"][-4:]) for row in rows)
    changed += [person(i, updated_at=later) for i in range(newest + 1, newest + 31)]
    return changed


def publish_rows(
    settings: Settings, catalog: Catalog, code: str, rows: list[dict[str, Any]], tag: int
) -> PublishResult:
    """``rows`` as the candidate ``audit.<code>``, a passed gate run for it, then
    ``hub.publish.publish`` (which writes the shared files)."""
    resource = catalog.resource(code)
    schema = pa.schema([(f.name, arrow_type(f.type)) for f in resource.fields])
    table = pa.Table.from_pylist(rows, schema=schema)
    file = settings.home / f"candidate-{code}-{tag}.parquet"
    file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, file)
    batch = f"20261102T{tag:06d}-batch"
    with open_warehouse(settings.warehouse_url) as warehouse:
        columns = warehouse.column_definitions(resource, CANDIDATE_COLUMNS)
        warehouse.execute(f"DROP TABLE IF EXISTS audit.{quote_ident(code)}")
        warehouse.execute(f"CREATE TABLE audit.{quote_ident(code)} ({', '.join(columns)})")
        warehouse.append_parquet(
            f"audit.{quote_ident(code)}",
            [file],
            {
                "_batch_id": batch,
                "_extracted_at": T0 + timedelta(hours=tag),
                "_source_duplicates": 1,
            },
        )
        started = datetime.now(UTC).replace(tzinfo=None)
        warehouse.execute(
            "INSERT INTO ops.gate_runs (gate_run_id, resource, candidate_rows, "
            "candidate_max_batch, passed, started_at, finished_at, docs_path) "
            "VALUES (?, ?, ?, ?, TRUE, ?, ?, NULL)",
            (f"{code}-gate-{tag}", code, len(rows), batch, started, started),
        )
    (result,) = publish(settings, [code], catalog=catalog)
    assert result.status.value == "published" and not result.notes, (result.message, result.notes)
    return result


# ------------------------------------------------------------------ the world


def grant(book: DemandBook, app: str, scenario: str, resource: str, fields: tuple[str, ...],
          rows: RowScope) -> str:  # fmt: skip
    """A demand approved by its provider; returns the grant id."""
    spec = DemandSpec(scenario=scenario, resource=resource, fields=fields,
                      purpose="公积金贷款批量核验", legal_basis="《住房公积金管理条例》第二十六条",
                      rows=rows)  # fmt: skip
    demand, _ = book.submit(app, spec, by="dev")
    provider = book.catalog.resource(resource).provider
    made = book.approve(demand.demand_id, department=provider, by="officer")
    return made.grant_id


@dataclass
class World:
    """A published persons (v1), grants, keys and a running ``hub serve``."""

    settings: Settings
    catalog: Catalog
    url: str  # the server, http://127.0.0.1:<port>
    http: httpx.Client
    keys: dict[str, str]
    grants: dict[str, str]
    rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    tmp: Path = Path()

    def profile(self, key: str = "app", name: str = "app.share") -> str:
        path = self.tmp / name
        path.write_text(json.dumps({"shareCredentialsVersion": 1,
                                    "endpoint": f"{self.url}/delta-sharing",
                                    "bearerToken": self.keys[key]}))  # fmt: skip
        return str(path)

    def table(self, grant: str = "persons") -> str:
        """``share.schema.table`` of one of the world's grants."""
        return f"{APP}.persons.{self.grants[grant].lower().replace('-', '_')}"

    def publish(self, rows: list[dict[str, Any]]) -> PublishResult:
        tag = max(self.rows, default=0) + 1
        result = publish_rows(self.settings, self.catalog, "persons", rows, tag)
        self.rows[result.version or 0] = rows
        return result

    def book(self) -> tuple[Any, DemandBook]:
        store = open_ops(self.settings)
        return store, DemandBook.for_settings(store, self.catalog, self.settings)

    def get(self, path: str, key: str = "app", **options: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}", **options.pop("headers", {})}
        return self.http.get(path, headers=headers, **options)

    def post(self, path: str, body: Any, key: str = "app", **options: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}", **options.pop("headers", {})}
        return self.http.post(path, json=body, headers=headers, **options)


def api_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-End-User-Id": "batch-job",
            "X-Purpose": quote("公积金贷款批量核验")}  # fmt: skip


@pytest.fixture
def world(
    warehouse_url: str, catalog: Catalog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[World]:
    # a deployment sets its secrets (only the embedded default makes them itself)
    set_deployment_secrets(monkeypatch)
    monkeypatch.setenv("HUB_SECRET_SHARING_URL_KEY", "k" * 43)
    monkeypatch.setenv("HUB_API_CACHE_SECONDS", "0")  # a revocation acts at once
    monkeypatch.setenv("HUB_SHARING_FILE_ROWS", str(FILE_ROWS))
    settings = Settings()
    grants: dict[str, str] = {}
    with open_ops(settings) as store:
        book = DemandBook.for_settings(store, catalog, settings)
        grants["persons"] = grant(book, APP, SCENARIO, "persons", GRANTED, RowScope.all)
        grants["applicant"] = grant(book, APP, SCENARIO, "property_rights",
                                    ("owner_id", "status"), RowScope.applicant)  # fmt: skip
        grants["other"] = grant(book, OTHER_APP, OTHER_SCENARIO, "persons",
                                ("citizen_id", "registration_status"), RowScope.all)  # fmt: skip
        keys = {
            "app": create_key(store, PrincipalKind.application, APP, by="t").key,
            "other": create_key(store, PrincipalKind.application, OTHER_APP, by="t").key,
            "newborn": create_key(
                store, PrincipalKind.application, "newborn_one_chain", by="t"
            ).key,
            "registry": create_key(store, PrincipalKind.department, "registry", by="t").key,
        }
    port = free_port()
    with serving(settings, catalog, port) as url, httpx.Client(base_url=url, timeout=30) as http:
        found = World(settings, catalog, url, http, keys, grants, tmp=tmp_path)
        found.publish(day_one())
        yield found


@contextmanager
def serving(settings: Settings, catalog: Catalog, port: int) -> Iterator[str]:
    """``hub serve``'s app under uvicorn on ``port`` in a thread, until the block ends."""
    import uvicorn

    from hub.serve import create_app

    config = uvicorn.Config(
        create_app(settings, catalog), host="127.0.0.1", port=port, log_level="warning",
        access_log=False, lifespan="on",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="hub-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "hub serve did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
