"""The stock ``delta-sharing`` 1.4.2 client, in an environment of its own, against
``hub serve`` on both warehouses: it reads exactly its grant (row for row what the API
export and the record API answer for the same grant), at an older version, and the
changes of a day that turn version N into N+1; a revoked grant, an expired URL and a URL
for another file are refused; an applicant-only grant is not offered.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from hub.catalog import Catalog
from hub.catalog.models import Resource, RowScope
from hub.settings import Settings
from tests.conftest import free_port, set_deployment_secrets
from tests.sharing.conftest import (
    APP,
    GRANTED,
    MASKED,
    OTHER_APP,
    SCENARIO,
    StockClient,
    World,
    api_headers,
    day_two,
    grant,
    serving,
)

KEY = "citizen_id"


def canonical(resource: Resource, name: str, value: Any) -> Any:
    """One value as comparable text, whichever side it came from: the client's pandas
    types, the export's served text, the record API's JSON."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    kind = resource.field(name).type
    if kind == "timestamp":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.replace(tzinfo=None).isoformat(" ")
    if kind == "date":
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
        return day.isoformat()
    if kind.startswith("decimal"):
        return str(Decimal(str(value)))
    if kind == "boolean":
        return bool(value)
    return value


def rows_of(
    resource: Resource,
    records: Iterable[dict[str, Any]],
    columns: Iterable[str],
    masked: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """Records by key, each column canonical (masked columns are text as they are)."""
    shown = set(masked)
    found = {}
    for record in records:
        found[str(record[KEY])] = {
            name: record[name] if name in shown else canonical(resource, name, record[name])
            for name in columns
        }
    return found


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def export_of(world: World, key: str = "app") -> list[dict[str, Any]]:
    response = world.http.get(
        "/v1/resources/persons/export", params={"format": "parquet"},
        headers=api_headers(world.keys[key]),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return table_rows(pq.read_table(io.BytesIO(response.content)))


def records_of(world: World, key: str = "app") -> list[dict[str, Any]]:
    """Every record through the record API, a page at a time."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if after:
            params["after"] = after
        page = world.http.get("/v1/resources/persons/records", params=params,
                              headers=api_headers(world.keys[key]))  # fmt: skip
        assert page.status_code == 200, page.text
        body = page.json()
        found += body["records"]
        after = body["next"]
        if not after:
            return found


def apply_changes(
    resource: Resource, start: dict[str, dict[str, Any]], changes: list[dict[str, Any]],
    columns: list[str], masked: Iterable[str],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """What a consumer does with the feed: per version, check each pre-image and apply
    deletes, then apply inserts and post-images."""
    state = dict(start)
    by_version: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for change in changes:
        by_version[int(change["_commit_version"])].append(change)
    for version in sorted(by_version):
        rows = by_version[version]
        for change in rows:
            image = rows_of(resource, [change], columns, masked)[str(change[KEY])]
            if change["_change_type"] == "update_preimage":
                assert state[str(change[KEY])] == image, (version, change)
            elif change["_change_type"] == "delete":
                assert state.pop(str(change[KEY])) == image, (version, change)
        for change in rows:
            image = rows_of(resource, [change], columns, masked)[str(change[KEY])]
            if change["_change_type"] == "insert":
                assert str(change[KEY]) not in state, (version, change)
                state[str(change[KEY])] = image
            elif change["_change_type"] == "update_postimage":
                state[str(change[KEY])] = image
    return state


def shared_columns(resource: Resource, granted: Iterable[str], masked: Iterable[str]) -> list[str]:
    chosen = {*granted, *masked}
    return [f.name for f in resource.fields if f.name in chosen]


# ------------------------------------------------------------------ the fixture's world


def test_the_stock_client_reads_exactly_its_grant_and_follows_its_changes(
    world: World, stock: StockClient
) -> None:
    resource = world.catalog.resource("persons")
    columns = shared_columns(resource, GRANTED, MASKED)
    profile = world.profile()
    url = f"{profile}#{world.table()}"

    listed, v1, head, version = stock.run(
        {"call": "list_all_tables", "args": {"profile": profile}},
        {"call": "load_as_pandas", "args": {"url": url}},
        {"call": "load_as_pandas", "args": {"url": url, "limit": 10}},
        {"call": "get_table_version", "args": {"url": url}},
    )
    # one table: the grant on all rows; the applicant-only grant is not offered
    # each bulk table, then its companion of the records under dispute
    assert listed["value"] == [world.table(), world.table() + "_disputes"], listed
    assert version["value"] == 1
    v1_table = stock.frame(v1)
    assert v1_table.column_names == columns
    assert stock.frame(head).num_rows == 10

    shared = rows_of(resource, table_rows(v1_table), columns, MASKED)
    # row for row the API export under the same grant (its granted fields) ...
    exported = rows_of(resource, export_of(world), GRANTED)
    assert {k: {c: r[c] for c in GRANTED} for k, r in shared.items()} == exported
    # ... and the record API, masked fields included
    assert shared == rows_of(resource, records_of(world), columns, MASKED)

    world.publish(day_two(world.rows[1]))
    v2, old, changes, whole_history, delta = stock.run(
        {"call": "load_as_pandas", "args": {"url": url}},
        {"call": "load_as_pandas", "args": {"url": url, "version": 1}},
        {"call": "load_table_changes_as_pandas",
         "args": {"url": url, "starting_version": 2, "ending_version": 2}},
        {"call": "load_table_changes_as_pandas", "args": {"url": url, "starting_version": 1}},
        {"call": "load_as_pandas", "args": {"url": url, "use_delta_format": True}},
    )  # fmt: skip
    after = rows_of(resource, table_rows(stock.frame(v2)), columns, MASKED)
    assert after == rows_of(resource, records_of(world), columns, MASKED)
    assert {k: {c: r[c] for c in GRANTED} for k, r in after.items()} == rows_of(
        resource, export_of(world), GRANTED
    )
    # time travel: version 1 as it was
    assert rows_of(resource, table_rows(stock.frame(old)), columns, MASKED) == shared
    # the day's changes applied to version 1 give exactly version 2
    day = table_rows(stock.frame(changes))
    assert {c["_commit_version"] for c in day} == {2}
    assert {c["_change_type"] for c in day} == {
        "insert", "delete", "update_preimage", "update_postimage"
    }  # fmt: skip
    assert apply_changes(resource, shared, day, columns, MASKED) == after
    # and the whole feed from nothing gives it too
    assert apply_changes(resource, {}, table_rows(stock.frame(whole_history)), columns,
                         MASKED) == after  # fmt: skip
    # the delta response format is not served: the client is told so, not left hanging
    assert not delta["ok"] and delta["status"] == 400 and "parquet" in delta["message"]

    # another application's profile lists only its own table and cannot read ours
    other_profile = world.profile("other", "other.share")
    other_listed, other_read = stock.run(
        {"call": "list_all_tables", "args": {"profile": other_profile}},
        {"call": "load_as_pandas", "args": {"url": f"{other_profile}#{world.table()}"}},
    )
    other_table = world.grants["other"].lower().replace("-", "_")
    assert other_listed["value"] == [
        f"{OTHER_APP}.persons.{other_table}",
        f"{OTHER_APP}.persons.{other_table}_disputes",
    ]
    assert not other_read["ok"] and other_read["status"] == 404

    # a revoked grant: refused at once (a 4xx, so no retries), and no longer listed
    store, book = world.book()
    with store:
        demand = next(d for d in book.demands(application=APP)
                      if d.grant_id == world.grants["persons"])  # fmt: skip
        book.revoke(demand.demand_id, by="department:registry/officer", reason="停止共享")
    refused, relisted = stock.run(
        {"call": "load_as_pandas", "args": {"url": url}},
        {"call": "list_all_tables", "args": {"profile": profile}},
    )
    assert not refused["ok"] and refused["status"] == 403, refused
    assert "revoked" in refused["message"] and refused["seconds"] < 10
    assert relisted["value"] == []


def test_the_stock_reader_refuses_an_expired_url_and_a_url_for_another_file(
    world: World, stock: StockClient
) -> None:
    from hub.sharing.signing import UrlSigner, load_url_key

    path = f"/delta-sharing/shares/{APP}/schemas/persons/tables/{world.table().split('.')[2]}"
    lines = world.post(f"{path}/query", {}).text.splitlines()
    urls = [json.loads(line)["file"]["url"] for line in lines if '"file"' in line]
    parts = urlsplit(urls[0])
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    file = parts.path.removeprefix("/delta-sharing/files/")
    expired = 1_700_000_000  # signed correctly, long past
    signature = UrlSigner(load_url_key(world.settings)).sign_file(
        application=params["a"], grant_id=params["g"], key_id=params["k"], path=file,
        expires=expired,
    )  # fmt: skip
    base = urls[0].split("?")[0]
    another = urls[1].split("?")[0]
    bad = [
        f"{base}?{urlencode({**params, 'e': expired, 's': signature})}",
        f"{another}?{urlencode(params)}",
    ]
    good, *refused = stock.run(
        *({"call": "read_file_url", "args": {"url": u}} for u in [urls[0], *bad])
    )
    assert good["ok"] and good["value"]["rows"] > 0
    for outcome, url in zip(refused, bad, strict=True):
        # fsspec reports the refused HEAD as a missing file; the server said 403
        assert not outcome["ok"] and outcome["error"] == "FileNotFoundError", outcome
        assert world.http.get(url).status_code == world.http.head(url).status_code == 403


# ------------------------------------------------------------------ a simulated day


def test_the_stock_client_follows_a_simulated_day(
    warehouse_url: str, catalog: Catalog, stock: StockClient, tmp_path: Path,
    monkeypatch: Any,
) -> None:  # fmt: skip
    """simulate -> sync -> dbt -> gate -> publish, a profile from ``hub share profile``,
    then ``--advance-day`` and the same again: the feed of that day applied to version 1
    is exactly version 2, and each version is what the export serves."""
    from hub.build import build
    from hub.cli import app
    from hub.demand import DemandBook
    from hub.gate import run_gate
    from hub.publish import publish
    from hub.storage.interface import open_ops
    from hub.sync import sync
    from simulator import advance_day, simulate
    from simulator.servers import running_systems

    set_deployment_secrets(monkeypatch)
    monkeypatch.setenv("HUB_SECRET_SHARING_URL_KEY", "s" * 43)
    monkeypatch.setenv("HUB_API_CACHE_SECONDS", "0")
    settings = Settings()
    resource = catalog.resource("persons")

    def publish_day() -> int:
        with running_systems(settings):
            synced = sync(settings, catalog, department="registry")
        assert all(r.ok for r in synced), [r.error for r in synced]
        build(settings, select="+persons")
        (gated,) = run_gate(settings, ["persons"], catalog=catalog)
        assert gated.passed
        (published,) = publish(settings, ["persons"], catalog=catalog)
        assert published.status.value == "published" and not published.notes, published.notes
        return int(published.version or 0)

    simulate(settings, scale=0.1, seed=11)
    assert publish_day() == 1
    with open_ops(settings) as store:  # the provider grants the whole table
        book = DemandBook.for_settings(store, catalog, settings)
        granted = grant(book, APP, SCENARIO, "persons", GRANTED, RowScope.all)
    masked = MASKED
    columns = shared_columns(resource, GRANTED, masked)
    port = free_port()
    with serving(settings, catalog, port) as server:
        profile = tmp_path / "provident.share"
        made = CliRunner().invoke(app, ["share", "profile", APP, "--out", str(profile),
                                        "--endpoint", server, "--by", "test"])  # fmt: skip
        assert made.exit_code == 0, made.output
        document = json.loads(profile.read_text())
        assert document["shareCredentialsVersion"] == 1
        assert document["endpoint"] == f"{server}/delta-sharing"
        assert document["bearerToken"].startswith("hubk_") and "expirationTime" in document
        assert profile.stat().st_mode & 0o777 == 0o600
        table = f"{APP}.persons.{granted.lower().replace('-', '_')}"
        assert table in made.output
        url = f"{profile}#{table}"
        with httpx.Client(base_url=server, timeout=30) as http:
            world = World(settings, catalog, server, http,
                          {"app": document["bearerToken"]}, {"persons": granted})  # fmt: skip
            (v1,) = stock.run({"call": "load_as_pandas", "args": {"url": url}})
            first = rows_of(resource, table_rows(stock.frame(v1)), columns, masked)
            assert first and {k: {c: r[c] for c in GRANTED} for k, r in first.items()} == rows_of(
                resource, export_of(world), GRANTED
            )

            changes_made = advance_day(settings)
            assert publish_day() == 2
            v2, day, back = stock.run(
                {"call": "load_as_pandas", "args": {"url": url}},
                {"call": "load_table_changes_as_pandas",
                 "args": {"url": url, "starting_version": 2}},
                {"call": "load_as_pandas", "args": {"url": url, "version": 1}},
            )  # fmt: skip
            second = rows_of(resource, table_rows(stock.frame(v2)), columns, masked)
            assert {k: {c: r[c] for c in GRANTED} for k, r in second.items()} == rows_of(
                resource, export_of(world), GRANTED
            )
            feed = table_rows(stock.frame(day))
            assert feed, changes_made  # the simulated day changed persons
            assert apply_changes(resource, first, feed, columns, masked) == second
            assert rows_of(resource, table_rows(stock.frame(back)), columns, masked) == first
