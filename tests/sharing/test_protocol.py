"""The Delta Sharing server over HTTP, on both warehouses: what the protocol answers, what
it refuses and why, and the signed file URLs, tried as an attacker would."""

from __future__ import annotations

import io
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub.audit import audit_url, verify_chain
from hub.catalog.models import RowScope
from hub.serve.masking import mask_value
from hub.sharing.layout import read_versions
from hub.sharing.signing import UrlSigner, load_url_key
from tests.sharing.conftest import (
    APP,
    FILE_ROWS,
    GRANTED,
    MASKED,
    PERSONS,
    SCENARIO,
    World,
    day_two,
    grant,
)

BASE = "/delta-sharing"


def table_path(world: World, grant: str = "persons", share: str = APP) -> str:
    name = world.grants[grant].lower().replace("-", "_")
    schema = "persons" if grant != "applicant" else "property_rights"
    return f"{BASE}/shares/{share}/schemas/{schema}/tables/{name}"


def ndjson(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def files_of(lines: list[dict[str, Any]], kind: str = "file") -> list[dict[str, Any]]:
    return [line[kind] for line in lines if kind in line]


def fetch(world: World, url: str, **headers: str) -> Any:
    """A file URL as the client fetches it: absolute, no Authorization header."""
    assert url.startswith(world.url + BASE + "/files/"), url
    return world.http.get(url, headers=headers)


# ------------------------------------------------------------------ listing


def test_the_share_lists_one_table_per_grant_on_all_rows(world: World) -> None:
    shares = world.get(f"{BASE}/shares")
    assert shares.status_code == 200, shares.text
    assert [s["name"] for s in shares.json()["items"]] == [APP]
    assert world.get(f"{BASE}/shares/{APP.upper()}").json()["share"]["name"] == APP
    tables = world.get(f"{BASE}/shares/{APP}/all-tables").json()["items"]
    # the applicant-only grant on property_rights is no bulk table: listed nowhere
    # each bulk table, then its companion of the records under dispute
    name = world.grants["persons"].lower().replace("-", "_")
    assert [(t["schema"], t["name"]) for t in tables] == [
        ("persons", name),
        ("persons", f"{name}_disputes"),
    ]
    schemas = world.get(f"{BASE}/shares/{APP}/schemas").json()["items"]
    assert schemas == [{"name": "persons", "share": APP}]
    by_schema = world.get(f"{BASE}/shares/{APP}/schemas/persons/tables").json()["items"]
    assert by_schema == tables
    missing = world.get(f"{BASE}/shares/{APP}/schemas/property_rights/tables")
    assert missing.status_code == 404 and missing.json()["errorCode"] == "RESOURCE_DOES_NOT_EXIST"
    # the other application sees only its own share and table
    other = world.get(f"{BASE}/shares/talent_housing/all-tables", key="other").json()["items"]
    other_name = world.grants["other"].lower().replace("-", "_")
    assert [t["name"] for t in other] == [other_name, f"{other_name}_disputes"]


def test_paging_follows_next_page_tokens_and_refuses_forged_ones(world: World) -> None:
    store, book = world.book()
    with store:  # a second bulk table on persons
        second = grant(book, APP, SCENARIO, "persons", ("citizen_id", "name"), RowScope.all)
    # two tables, each with its companion of disputed records: four items
    first = world.get(f"{BASE}/shares/{APP}/all-tables", params={"maxResults": 2}).json()
    assert len(first["items"]) == 2 and first["nextPageToken"]
    rest = world.get(
        f"{BASE}/shares/{APP}/all-tables",
        params={"maxResults": 2, "pageToken": first["nextPageToken"]},
    ).json()
    assert len(rest["items"]) == 2 and "nextPageToken" not in rest
    names = {t["name"] for t in first["items"] + rest["items"]}
    tables = {world.grants["persons"].lower().replace("-", "_"), second.lower().replace("-", "_")}
    assert names == tables | {f"{t}_disputes" for t in tables}
    for bad in ["1.AAAA", "0." + first["nextPageToken"].split(".")[1], "x", "-1.abc"]:
        refused = world.get(
            f"{BASE}/shares/{APP}/all-tables", params={"maxResults": 1, "pageToken": bad}
        )
        assert refused.status_code == 400, (bad, refused.text)
    # a token of another list does not page this one
    schemas_token = world.get(f"{BASE}/shares/{APP}/schemas", params={"maxResults": 0}).json()
    assert schemas_token["items"] == [] and schemas_token["nextPageToken"]
    crossed = world.get(f"{BASE}/shares/{APP}/all-tables",
                        params={"pageToken": schemas_token["nextPageToken"]})  # fmt: skip
    assert crossed.status_code == 400
    assert world.get(f"{BASE}/shares", params={"maxResults": "-1"}).status_code == 400
    assert world.get(f"{BASE}/shares", params={"maxResults": "ten"}).status_code == 400


def test_who_may_not_read_is_told_why(world: World) -> None:
    path = table_path(world)
    cases = [
        ({}, 401, "UNAUTHENTICATED"),
        ({"Authorization": "Bearer hubk_000000000000_nope"}, 401, "UNAUTHENTICATED"),
        ({"Authorization": "Bearer not-a-key"}, 401, "UNAUTHENTICATED"),
        ({"Authorization": f"Bearer {world.keys['registry']}"}, 403, "PERMISSION_DENIED"),
        ({"Authorization": f"bearer {world.keys['app']}x"}, 401, "UNAUTHENTICATED"),
    ]
    for headers, status, code in cases:
        response = world.http.get(f"{path}/version", headers=headers)
        assert (response.status_code, response.json()["errorCode"]) == (status, code), headers
        assert response.json()["message"]
    # another application's key: its share is not this one, and it cannot name our table
    other = world.get(f"{path}/version", key="other")
    assert other.status_code == 404
    assert world.get(table_path(world, share="talent_housing") + "/version",
                     key="other").status_code == 404  # fmt: skip
    # an application without any grant
    assert world.get(f"{BASE}/shares/{APP}/all-tables", key="newborn").status_code == 404
    assert world.get(f"{BASE}/shares/newborn_one_chain/all-tables",
                     key="newborn").json()["items"] == []  # fmt: skip
    # spelling variants of names: case folds, anything else is not found
    assert world.get(table_path(world).upper().replace("/DELTA-SHARING/SHARES", f"{BASE}/shares")
                     .replace("/SCHEMAS/", "/schemas/").replace("/TABLES/", "/tables/")
                     + "/version").status_code == 200  # fmt: skip
    for variant in [path + "x", path.replace("gr_", "gr-"), path + "%00", path + " "]:
        assert world.get(f"{variant}/version").status_code == 404, variant
    assert world.get(f"{BASE}/shares/{APP}/schemas/{'p' * 300}/tables/x/version").status_code == 404


def test_an_applicant_only_grant_is_no_bulk_table_and_says_why(world: World) -> None:
    response = world.get(table_path(world, "applicant") + "/version")
    assert response.status_code == 403
    body = response.json()
    assert body["errorCode"] == "PERMISSION_DENIED"
    assert "applicant" in body["message"] and world.grants["applicant"] in body["message"]
    query = world.post(table_path(world, "applicant") + "/query", {})
    assert query.status_code == 403


# ------------------------------------------------------------------ versions, metadata, files


def test_version_metadata_and_query_follow_the_protocol(world: World) -> None:
    path = table_path(world)
    version = world.get(f"{path}/version")
    assert version.status_code == 200 and version.headers["delta-table-version"] == "1"
    head = world.http.head(
        f"{path}/version", headers={"Authorization": f"Bearer {world.keys['app']}"}
    )
    assert head.headers["delta-table-version"] == "1"
    metadata = world.get(f"{path}/metadata")
    assert metadata.headers["delta-table-version"] == "1"
    assert metadata.headers["content-type"].startswith("application/x-ndjson")
    protocol, meta = ndjson(metadata)
    assert protocol == {"protocol": {"minReaderVersion": 1}}
    schema = json.loads(meta["metaData"]["schemaString"])
    names = [f["name"] for f in schema["fields"]]
    assert set(names) == set(GRANTED) | set(MASKED) and "district_code" not in names
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types["birth_date"] == "date" and types["updated_at"] == "timestamp"
    assert all(types[m] == "string" for m in MASKED)
    assert meta["metaData"]["format"] == {"provider": "parquet"}
    assert meta["metaData"]["partitionColumns"] == []

    lines = ndjson(world.post(f"{path}/query", {}))
    assert lines[0] == protocol and "metaData" in lines[1]
    files = files_of(lines)
    assert len(files) == -(-PERSONS // FILE_ROWS)  # parts of HUB_SHARING_FILE_ROWS rows
    assert sum(json.loads(f["stats"])["numRecords"] for f in files) == PERSONS
    assert all(f["version"] == 1 and f["partitionValues"] == {} for f in files)
    assert len({f["id"] for f in files}) == len(files)
    assert all(f["expirationTimestamp"] > time.time() * 1000 for f in files)
    # the same file keeps its id across responses; its URL changes with its expiry
    again = files_of(ndjson(world.post(f"{path}/query", {"predicateHints": ["x > 1"]})))
    assert [f["id"] for f in again] == [f["id"] for f in files]

    # limitHint: only as many files as needed for that many rows
    limited = files_of(ndjson(world.post(f"{path}/query", {"limitHint": 10})))
    assert len(limited) == 1
    assert files_of(ndjson(world.post(f"{path}/query", {"limitHint": 0}))) == []
    # bad bodies and parameters: 400 with the protocol's error body
    bad_bodies: list[Any] = [
        {"version": -1},
        {"version": "x"},
        {"limitHint": -5},
        {"version": 1, "timestamp": "2026-01-01T00:00:00Z"},
        {"timestamp": "yesterday"},
        {"version": 9},
        [1, 2],
    ]
    for body in bad_bodies:
        refused = world.post(f"{path}/query", body)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["errorCode"] == "INVALID_PARAMETER_VALUE"
    oversized = world.http.post(
        f"{path}/query",
        content=b"{" + b" " * 100_000 + b"}",
        headers={"Authorization": f"Bearer {world.keys['app']}"},
    )
    assert oversized.status_code == 413  # the policy pipeline's size limit, before parsing
    # the delta response format is not served: asking for it alone is refused, plainly
    delta_only = world.post(
        f"{path}/query", {}, headers={"delta-sharing-capabilities": "responseformat=delta"}
    )
    assert delta_only.status_code == 400 and "parquet" in delta_only.json()["message"]
    both = world.post(
        f"{path}/query", {}, headers={"delta-sharing-capabilities": "responseformat=delta,parquet"}
    )
    assert (
        both.status_code == 200
        and both.headers["delta-sharing-capabilities"] == "responseformat=parquet"
    )


def test_files_are_the_grants_columns_masked_and_stream_with_range_and_head(world: World) -> None:
    files = files_of(ndjson(world.post(f"{table_path(world)}/query", {})))
    whole = [fetch(world, f["url"]) for f in files]
    assert all(r.status_code == 200 for r in whole)
    assert [len(r.content) for r in whole] == [f["size"] for f in files]
    table = pa.concat_tables(pq.read_table(io.BytesIO(r.content)) for r in whole)
    fields = world.catalog.resource("persons").fields
    assert table.column_names == [f.name for f in fields if f.name in {*GRANTED, *MASKED}]
    fields_by_name = {f.name: f for f in fields}
    rows = {r["citizen_id"]: r for r in table.to_pylist()}
    assert len(rows) == PERSONS
    source = {r["citizen_id"]: r for r in world.rows[1]}
    for citizen_id, row in rows.items():
        original = source[citizen_id]
        for name in GRANTED:
            assert row[name] == original[name], (citizen_id, name)
        for name in MASKED:  # the record API's rule, hub.serve.access.mask
            value = original[name]
            assert row[name] == mask_value(fields_by_name[name], value), (name, value)
            if value is not None and len(value) > 1:
                assert row[name] != value and "*" in row[name], (name, row[name])
    assert "district_code" not in table.column_names

    url, size = files[0]["url"], files[0]["size"]
    head = world.http.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == size
    assert head.headers["accept-ranges"] == "bytes" and head.content == b""
    part = fetch(world, url, Range="bytes=4-99")
    assert part.status_code == 206 and part.content == whole[0].content[4:100]
    assert part.headers["content-range"] == f"bytes 4-99/{size}"
    tail = fetch(world, url, Range="bytes=-8")
    assert tail.status_code == 206 and tail.content == whole[0].content[-8:]
    assert tail.content.endswith(b"PAR1")
    beyond = fetch(world, url, Range=f"bytes={size + 10}-")
    assert beyond.status_code == 416


def test_signed_urls_are_bound_to_their_file_grant_key_and_expiry(world: World) -> None:
    files = files_of(ndjson(world.post(f"{table_path(world)}/query", {})))
    url = files[0]["url"]
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    path = parts.path.removeprefix(f"{BASE}/files/")
    signer = UrlSigner(load_url_key(world.settings))

    def with_(new_path: str = path, **changes: str) -> str:
        return f"{world.url}{BASE}/files/{new_path}?{urlencode({**params, **changes})}"

    assert fetch(world, with_()).status_code == 200
    other_file = files[1]["url"].split("?")[0].removeprefix(f"{world.url}{BASE}/files/")
    expired = int(time.time()) - 1
    forged_expiry = signer.sign_file(application=APP, grant_id=params["g"], key_id=params["k"],
                                     path=path, expires=expired)  # fmt: skip
    cases = {
        "another file with this signature": with_(other_file),
        "a longer expiry": with_(e=str(int(params["e"]) + 3600)),
        "another grant": with_(g=world.grants["other"]),
        "another application": with_(a="talent_housing"),
        "another key": with_(k="000000000000"),
        "a tampered signature": with_(
            s=params["s"][:-2] + ("AA" if params["s"][-2:] != "AA" else "BB")
        ),
        "no signature": with_(s=""),
        "expired (correctly signed)": with_(e=str(expired), s=forged_expiry),
        # encoded, so that no client tidies the dots away before the server sees them
        "a path outside the shared files": with_("%2e%2e/%2e%2e/ops/access.sqlite"),
        "a path inside the shape, up and down": with_(path.replace("part-", "%2e%2e/part-")),
        "the unmasked base": with_(
            path.replace(f"shapes/{path.split('/')[3]}/part-00000", "base/full")
        ),
    }
    for what, bad in cases.items():
        response = world.http.get(bad)
        assert response.status_code == 403, (what, response.status_code, response.text)
        assert response.json()["errorCode"] == "PERMISSION_DENIED", what
    # a URL is no credential for the API, and the API key is not in it
    assert world.keys["app"] not in url
    assert world.http.get(f"{table_path(world)}/version", params=params).status_code == 401


def test_revoking_the_grant_or_the_key_stops_the_share_and_its_urls(world: World) -> None:
    path = table_path(world)
    url = files_of(ndjson(world.post(f"{path}/query", {})))[0]["url"]
    assert fetch(world, url).status_code == 200
    from hub.keys import parse_key, revoke_key

    store, book = world.book()
    with store:
        demand = next(
            d for d in book.demands(application=APP) if d.grant_id == world.grants["persons"]
        )
        book.revoke(demand.demand_id, by="department:registry/officer", reason="合同到期")
    refused = world.post(f"{path}/query", {})
    assert refused.status_code == 403 and "revoked" in refused.json()["message"]
    assert "合同到期" in refused.json()["message"]
    assert world.get(f"{BASE}/shares/{APP}/all-tables").json()["items"] == []
    assert fetch(world, url).status_code == 403  # the URL handed out before stops too
    # the other application's key: revoked, its URLs stop as well
    other = table_path(world, "other", share="talent_housing")
    other_url = files_of(ndjson(world.post(f"{other}/query", {}, key="other")))[0]["url"]
    with world.book()[0] as store:
        revoke_key(store, parse_key(world.keys["other"])[0])
    assert world.post(f"{other}/query", {}, key="other").status_code == 401
    assert fetch(world, other_url).status_code == 403


# ------------------------------------------------------------------ history and changes


def test_time_travel_changes_and_retention(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    path = table_path(world)
    world.publish(day_two(world.rows[1]))
    assert world.get(f"{path}/version").headers["delta-table-version"] == "2"
    versions = read_versions(world.settings, "persons")
    assert [(v.version, v.parent, v.is_current) for v in versions] == [
        (1, None, False),
        (2, 1, True),
    ]
    assert versions[1].changes is not None and versions[1].changes.deletes == PERSONS // 97

    v1 = files_of(ndjson(world.post(f"{path}/query", {"version": 1})))
    assert sum(json.loads(f["stats"])["numRecords"] for f in v1) == PERSONS
    first_at = versions[0].published_at.replace("+00:00", "Z")
    at_time = files_of(ndjson(world.post(f"{path}/query", {"timestamp": first_at})))
    assert [f["id"] for f in at_time] == [f["id"] for f in v1]
    early = world.post(f"{path}/query", {"timestamp": "2001-01-01T00:00:00Z"})
    assert early.status_code == 400 and "oldest kept version" in early.json()["message"]
    meta = ndjson(world.get(f"{path}/metadata", params={"version": 1}))
    assert meta[1]["metaData"]["version"] == 1

    changes = world.get(f"{path}/changes", params={"startingVersion": 1})
    lines = ndjson(changes)
    assert changes.headers["delta-table-version"] == "1"
    adds, cdfs = files_of(lines, "add"), files_of(lines, "cdf")
    assert {a["version"] for a in adds} == {1} and len(adds) == len(v1)
    assert [c["version"] for c in cdfs] == [2]
    data = pq.read_table(io.BytesIO(fetch(world, cdfs[0]["url"]).content))
    kinds = data.column("_change_type").to_pylist()
    kept = [i for i in range(1, PERSONS + 1) if i % 97]
    renamed = [i for i in kept if i % 53 == 0]
    died = [i for i in kept if i % 53 and i % 61 and i % 71 == 0]
    readdressed = [i for i in kept if i % 53 and i % 61 and i % 71 and i % 89 == 0]
    # a district_code move (i % 61) is no change of this grant's table
    updates = len(renamed) + len(died) + len(readdressed)
    assert kinds.count("insert") == 30 and kinds.count("delete") == PERSONS // 97
    assert kinds.count("update_preimage") == kinds.count("update_postimage") == updates
    # ranges: checked and explained
    for params, needle in [
        ({}, "startingVersion"),
        ({"startingVersion": 3}, "after the current version"),
        ({"startingVersion": 2, "endingVersion": 1}, "before the starting version"),
        ({"startingVersion": 1, "startingTimestamp": first_at}, "exactly one"),
        ({"startingTimestamp": "2999-01-01T00:00:00Z"}, "no version was published"),
    ]:
        refused = world.get(f"{path}/changes", params=params)
        assert refused.status_code == 400 and needle in refused.json()["message"], params
    only_two = ndjson(
        world.get(f"{path}/changes", params={"startingVersion": 2, "endingVersion": 2})
    )
    assert files_of(only_two, "add") == [] and len(files_of(only_two, "cdf")) == 1

    # streaming readers: startingVersion on query gives each version's adds and removes
    stream = ndjson(world.post(f"{path}/query", {"startingVersion": 1}))
    assert {a["version"] for a in files_of(stream, "add")} == {1, 2}
    assert {r["version"] for r in files_of(stream, "remove")} == {2}

    # retention: with one version kept, v1 and its files go; its URLs and changes too
    old_url = v1[0]["url"]
    monkeypatch.setenv("HUB_KEEP_VERSIONS", "1")
    from hub.settings import Settings

    world.settings = Settings()
    world.publish(day_two(world.rows[2]))
    assert not (world.settings.sharing / "persons" / "v1").exists()
    assert fetch(world, old_url).status_code == 404
    gone = world.get(f"{path}/changes", params={"startingVersion": 1})
    assert gone.status_code == 400 and "no longer kept" in gone.json()["message"]
    pruned = world.post(f"{path}/query", {"version": 1})
    assert pruned.status_code == 400 and "not kept" in pruned.json()["message"]


def test_a_rolled_back_version_is_not_served(world: World) -> None:
    from hub.publish import rollback

    path = table_path(world)
    world.publish(day_two(world.rows[1]))
    result = rollback(world.settings, "persons")
    assert result.version == 1 and not result.notes, result.notes
    assert world.get(f"{path}/version").headers["delta-table-version"] == "1"
    refused = world.post(f"{path}/query", {"version": 2})
    assert refused.status_code == 400 and "rolled back" in refused.json()["message"]
    assert not (world.settings.sharing / "persons" / "v2").exists()
    # the next version's changes are from v1, which a reader of v1 follows; a reader of
    # the rolled-back v2 is told to load again
    world.publish(day_two(world.rows[1]))
    versions = {v.version: v for v in read_versions(world.settings, "persons")}
    assert versions[3].parent == 1
    assert world.get(f"{path}/changes", params={"startingVersion": 2}).status_code == 200
    stale = world.get(f"{path}/changes", params={"startingVersion": 3})
    assert stale.status_code == 400 and "rolled back" in stale.json()["message"]


def test_a_grant_approved_after_publish_is_readable_at_once_with_its_history(world: World) -> None:
    world.publish(day_two(world.rows[1]))
    store, book = world.book()  # for_settings: the listener writes the files
    with store:
        late = grant(book, APP, SCENARIO, "persons", ("citizen_id", "sex"), RowScope.all)
    name = late.lower().replace("-", "_")
    path = f"{BASE}/shares/{APP}/schemas/persons/tables/{name}"
    for version in (1, 2):
        files = files_of(ndjson(world.post(f"{path}/query", {"version": version})))
        table = pa.concat_tables(pq.read_table(io.BytesIO(fetch(world, f["url"]).content))
                                 for f in files)  # fmt: skip
        # sex granted now, the other personal fields masked
        assert table.num_rows == len(world.rows[version])
        assert set(table.column_names) == {"citizen_id", "sex", "name", "birth_date",
                                           "ethnicity", "household_address"}  # fmt: skip
        assert "*" in table.column("name")[0].as_py()
        assert table.column("sex")[0].as_py() in {"1", "2"}


def test_every_share_call_and_file_fetch_is_in_the_audit_chain_under_its_grant(
    world: World,
) -> None:
    path = table_path(world)
    query = world.post(f"{path}/query", {})
    files = files_of(ndjson(query))
    fetched = fetch(world, files[0]["url"], Range="bytes=0-9")
    applicant = world.get(table_path(world, "applicant") + "/version")
    forged = world.http.get(files[0]["url"] + "x")
    answers = {"query": query, "file": fetched, "applicant": applicant, "forged": forged}
    ids = {name: r.headers["x-request-id"] for name, r in answers.items()}
    keys = world.http.get("/v1/keys").json()
    time.sleep(0.3)  # the writer commits in groups
    url = audit_url(world.settings)
    report = verify_chain(url, keys)
    assert report.ok, report.problem
    by_request = {r["request_id"]: r for r in _audit_rows(url)}
    entry = by_request[ids["query"]]
    assert (entry["action"], entry["grant_id"], entry["resource"], entry["version"]) == (
        "share:query", world.grants["persons"], "persons", 1
    )  # fmt: skip
    assert entry["row_count"] == PERSONS and entry["status"] == 200
    assert entry["purpose"] == "公积金贷款批量核验" and entry["application"] == APP
    entry = by_request[ids["file"]]
    assert entry["action"] == "share:file bytes=0-9" and entry["status"] == 200
    assert entry["grant_id"] == world.grants["persons"] and entry["row_count"] == FILE_ROWS
    entry = by_request[ids["applicant"]]
    assert entry["status"] == 403 and entry["grant_id"] == world.grants["applicant"]
    entry = by_request[ids["forged"]]
    assert entry["status"] == 403 and entry["application"] is None  # a claim, not a caller


def _audit_rows(url: str) -> list[dict[str, Any]]:
    columns = (
        "request_id, application, purpose, resource, version, action, row_count, status, grant_id"
    )
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            found = conn.execute(f"SELECT {columns} FROM audit_log ORDER BY seq").fetchall()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            found = conn.execute(f"SELECT {columns} FROM ops.audit_log ORDER BY seq").fetchall()
    names = [c.strip() for c in columns.split(",")]
    return [dict(zip(names, row, strict=True)) for row in found]


def test_a_grant_approved_over_the_api_is_a_table_at_once(world: World) -> None:
    """The department's system approves through /v1/demands: the grant's files are written
    as the approval commits, so the application's client reads it with no publish and no
    refresh in between."""
    demand = world.post(
        "/v1/demands",
        {"scenario": SCENARIO, "resource": "persons", "fields": ["citizen_id", "ethnicity"],
         "purpose": "公积金贷款批量核验民族", "legal_basis": "《住房公积金管理条例》第二十六条",
         "rows": "all", "submitted_by": "fund-dev"},
        headers={"X-End-User-Id": "fund-dev", "X-Purpose": "register"},
    )  # fmt: skip
    assert demand.status_code == 201, demand.text
    approved = world.post(
        f"/v1/demands/{demand.json()['demand_id']}/approve",
        {"officer": "registry-officer-3"},
        key="registry",
        headers={"X-End-User-Id": "registry-officer-3", "X-Purpose": "approve"},
    )
    assert approved.status_code == 200, approved.text
    name = approved.json()["grant_id"].lower().replace("-", "_")
    query = world.post(f"{BASE}/shares/{APP}/schemas/persons/tables/{name}/query", {})
    files = files_of(ndjson(query))
    table = pa.concat_tables(pq.read_table(io.BytesIO(fetch(world, f["url"]).content))
                             for f in files)  # fmt: skip
    assert table.num_rows == PERSONS
    assert "ethnicity" in table.column_names and "*" in table.column("name")[0].as_py()
