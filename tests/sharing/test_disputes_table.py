"""The ``<table>_disputes`` companion of every bulk table (issue 15): a record disputed
between two publishes is flagged to Delta Sharing readers at once, on both warehouses,
under the same grant as its table, and the stock client reads and joins it."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pyarrow.parquet as pq

from hub.demand.calendar import utc_now
from tests.sharing.conftest import (
    APP,
    OTHER_APP,
    StockClient,
    World,
    person,
)
from tests.sharing.test_protocol import BASE, fetch, files_of, ndjson, table_path


def companion_path(world: World, grant: str = "persons", share: str = APP) -> str:
    return table_path(world, grant, share) + "_disputes"


def file_dispute(world: World, key: str, citizen: int, field: str, value: str) -> dict[str, Any]:
    """A dispute filed by ``key``'s application on person ``citizen`` (through the book the
    API and the portal call: the world's persons have made-up IDs the API would refuse;
    tests/serve/test_disputes.py files over HTTP)."""
    from hub.quality.disputes import DisputeBook

    application = APP if key == "app" else OTHER_APP
    store, _ = world.book()
    with store:
        dispute, created = DisputeBook(store, world.catalog).file(
            world.catalog.resource("persons"),
            {"citizen_id": person(citizen)["citizen_id"]},
            field,
            proposed_value=value,
            evidence="户口簿原件所载",
            by="window-officer-03",
            now=utc_now(),
            published=person(citizen),
            version=1,
            application=application,
            grant_id=world.grants["persons" if key == "app" else "other"],
        )
    assert created
    return dispute.as_dict()


def confirm(world: World, dispute_id: str) -> None:
    from hub.quality.disputes import DisputeBook

    store, _ = world.book()
    with store:
        DisputeBook(store, world.catalog).answer(
            dispute_id, confirm=True, by="registry-officer", reason="已更正",
            department="registry", now=utc_now(),
        )  # fmt: skip


def disputes_rows(world: World, key: str = "app", grant: str = "persons") -> list[dict[str, Any]]:
    share = APP if key == "app" else OTHER_APP
    lines = ndjson(world.post(f"{companion_path(world, grant, share)}/query", {}, key=key))
    (file,) = files_of(lines)
    body = fetch(world, file["url"])
    assert body.status_code == 200, body.text
    return pq.read_table(io.BytesIO(body.content)).to_pylist()


def test_a_dispute_shows_in_the_companion_table_of_every_grant_that_shows_the_field(
    world: World,
) -> None:
    path = companion_path(world)
    tables = world.get(f"{BASE}/shares/{APP}/all-tables").json()["items"]
    assert [t["name"] for t in tables] == [
        path.rsplit("/", 1)[1].removesuffix("_disputes"),
        path.rsplit("/", 1)[1],
    ]
    assert world.get(f"{path}/version").headers["delta-table-version"] == "0"
    assert disputes_rows(world) == []

    name = file_dispute(world, "app", 5, "name", "张五")
    status = file_dispute(world, "other", 7, "registration_status", "迁出")
    # filed: one event each, so the table is at version 2, read at once (no publish)
    assert world.get(f"{path}/version").headers["delta-table-version"] == "2"
    _, meta = ndjson(world.get(f"{path}/metadata"))
    schema = json.loads(meta["metaData"]["schemaString"])
    assert [f["name"] for f in schema["fields"]] == [
        "citizen_id", "dispute_id", "field", "status", "label", "filed_at", "deadline",
    ]  # fmt: skip
    assert meta["metaData"]["configuration"] == {"enableChangeDataFeed": "false"}
    rows = disputes_rows(world)
    assert [(r["citizen_id"], r["field"], r["status"], r["dispute_id"]) for r in rows] == [
        (person(5)["citizen_id"], "name", "open", name["dispute_id"]),
        (person(7)["citizen_id"], "registration_status", "open", status["dispute_id"]),
    ]
    # the other application's grant does not show the name: only its own field's flag
    other = disputes_rows(world, key="other", grant="other")
    assert [(r["citizen_id"], r["field"]) for r in other] == [
        (person(7)["citizen_id"], "registration_status")
    ]

    # the provider confirms: a third event, the flag reads confirmed
    confirm(world, name["dispute_id"])
    assert world.get(f"{path}/version").headers["delta-table-version"] == "3"
    assert [r["status"] for r in disputes_rows(world)] == ["confirmed", "open"]


def test_the_companion_serves_its_current_version_only_and_its_urls_are_bound(
    world: World,
) -> None:
    path = companion_path(world)
    file_dispute(world, "app", 5, "name", "张五")
    current = files_of(ndjson(world.post(f"{path}/query", {})))[0]
    # the current version by number is served; any other, a timestamp or a feed is not
    assert files_of(ndjson(world.post(f"{path}/query", {"version": 1})))
    for body in [{"version": 0}, {"timestamp": "2026-11-02T00:00:00Z"}, {"startingVersion": 0}]:
        refused = world.post(f"{path}/query", body)
        assert refused.status_code == 400, (body, refused.text)
        assert "current version only" in refused.json()["message"]
    feed = world.get(f"{path}/changes", params={"startingVersion": 0})
    assert feed.status_code == 400
    assert world.get(f"{path}/metadata", params={"version": 0}).status_code == 400
    # another application's key finds no such table in its own share, nor in this one
    assert world.post(f"{path}/query", {}, key="other").status_code == 404
    # a department's key is no share reader
    assert world.post(f"{path}/query", {}, key="registry").status_code in (401, 403)
    # the URL names one file of one grant: another path or a forged signature is refused
    parts = urlsplit(current["url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    forged = dict(query, s=query["s"][:-2] + ("AA" if query["s"][-2:] != "AA" else "BB"))
    assert fetch(world, f"{world.url}{parts.path}?{urlencode(forged)}").status_code == 403
    sibling = parts.path.replace("/disputes/", "/v1/shapes/", 1)
    assert fetch(world, f"{world.url}{sibling}?{parts.query}").status_code == 403
    # a spelling variant of the table is the same table (names are case-insensitive)
    upper = world.post(f"{path.rsplit('/', 1)[0]}/{path.rsplit('/', 1)[1].upper()}/query", {})
    assert upper.status_code == 200


def test_the_stock_client_reads_and_joins_the_companion(world: World, stock: StockClient) -> None:
    file_dispute(world, "app", 11, "name", "张十一")
    profile = world.profile()
    table = world.table()
    listed, rows, version, data = stock.run(
        {"call": "list_all_tables", "args": {"profile": profile}, "out": None},
        {"call": "load_as_pandas", "args": {"url": f"{profile}#{table}_disputes"}},
        {"call": "get_table_version", "args": {"url": f"{profile}#{table}_disputes"}, "out": None},
        {"call": "load_as_pandas", "args": {"url": f"{profile}#{table}"}},
    )
    assert listed["ok"] and f"{table}_disputes" in listed["value"], listed
    assert version["ok"] and version["value"] == 1, version
    flagged = stock.frame(rows).to_pylist()
    assert [(r["citizen_id"], r["field"], r["status"]) for r in flagged] == [
        (person(11)["citizen_id"], "name", "open")
    ]
    # the key joins: the flagged record is in the table, with the value in dispute
    persons = {r["citizen_id"]: r for r in stock.frame(data).to_pylist()}
    assert persons[flagged[0]["citizen_id"]]["name"] == person(11)["name"]
