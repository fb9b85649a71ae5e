"""A property test of the read policy against a small reference model: hypothesis makes
grants and requests; every answer of the API must be the model's, and what is returned is
never more than the one grant the request was served under allows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hub.demand.calendar import utc_now
from hub.identifiers import canonical
from hub.serve.masking import mask_value
from hub.storage.interface import open_ops
from tests.serve.conftest import OWNER, ROWS, SELLER, Published, headers

APP = "housing_transfer_window"
SCENARIO = "second_hand_housing_transfer"
CODE = "property_rights"
FIELDS = ("certificate_no", "unit_id", "owner_id", "owner_name", "share", "co_ownership",
          "registered_date", "status", "updated_at")  # fmt: skip
PERSONAL = {"owner_id", "owner_name"}
SUBJECT = "owner_id"


@dataclass(frozen=True)
class GrantSpec:
    fields: frozenset[str]
    applicant_only: bool


@dataclass(frozen=True)
class Request:
    export: bool
    filters: tuple[tuple[str, str], ...]
    wanted: tuple[str, ...] | None
    grant: int | None  # index into the grants; -1: a grant id that is not the caller's
    applicant: str | None


grant_specs = st.lists(
    st.builds(
        GrantSpec,
        st.frozensets(st.sampled_from(FIELDS), min_size=1, max_size=len(FIELDS)),
        st.booleans(),
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    export = draw(st.booleans())
    filters: list[tuple[str, str]] = []
    if not export:
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)):
            row = draw(st.sampled_from(ROWS[CODE]))
            filters.append((name, str(row[name])))
    wanted = None
    if not export and draw(st.booleans()):
        wanted = tuple(draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)))
    grant = draw(st.one_of(st.none(), st.integers(min_value=-1, max_value=2)))
    applicant = draw(st.sampled_from([None, OWNER, SELLER, SELLER.lower()]))
    return Request(export, tuple(filters), wanted, grant, applicant)


def expected(grants: list[GrantSpec], request: Request) -> tuple[int, GrantSpec | None]:
    """The reference model: the status, and the one grant a 200 is served under."""
    asked = {name for name, _ in request.filters} | set(request.wanted or ())
    if request.grant is not None:
        if request.grant < 0 or request.grant >= len(grants):
            return 403, None
        chosen = grants[request.grant]
        if not asked <= chosen.fields:
            return 403, None
    else:
        covering = [g for g in grants if asked <= g.fields]
        if not covering:
            return 403, None
        if len(covering) > 1:
            return 409, None
        chosen = covering[0]
    if request.export:
        return (403, None) if chosen.applicant_only else (200, chosen)
    if chosen.applicant_only:
        if request.applicant is None:
            return 400, None
        if SUBJECT not in chosen.fields:
            return 403, None
    return 200, chosen


def model_rows(chosen: GrantSpec, request: Request) -> list[dict[str, Any]]:
    rows = [r for r in ROWS[CODE] if all(str(r[n]) == v for n, v in request.filters)]
    if chosen.applicant_only:
        assert request.applicant is not None
        rows = [r for r in rows if r[SUBJECT] == canonical(request.applicant)]
    return rows


def install(published: Published, grants: list[GrantSpec]) -> list[str]:
    """Replace the application's grants on the resource with ``grants``; their ids."""
    now = utc_now()
    ids = []
    with open_ops(published.settings) as store, store.transaction():
        store.execute(
            "UPDATE ops.grants SET status = 'revoked' WHERE application = ? AND resource = ?",
            (APP, CODE),
        )
        for spec in grants:
            demand_id, grant_id = f"DM-{uuid.uuid4().hex[:12]}", f"GR-{uuid.uuid4().hex[:12]}"
            fields = [f for f in FIELDS if f in spec.fields]
            scope = "applicant" if spec.applicant_only else "all"
            store.execute(
                "INSERT INTO ops.demands (demand_id, application, scenario, resource, provider, "
                "fields, row_scope, purpose, legal_basis, status, submitted_by, submitted_at, "
                "grant_id, updated_at) VALUES (?, ?, ?, ?, 'housing', ?, ?, '核验权属', '依法', "
                "'granted', 'model', ?, ?, ?)",
                (demand_id, APP, SCENARIO, CODE, str(fields).replace("'", '"'), scope, now,
                 grant_id, now),
            )  # fmt: skip
            store.execute(
                "INSERT INTO ops.grants (grant_id, demand_id, application, resource, fields, "
                "row_scope, purpose, basis, granted_at, granted_by, expires_at, status) "
                "VALUES (?, ?, ?, ?, ?, ?, '核验权属', 'approved', ?, 'model', ?, 'active')",
                (grant_id, demand_id, APP, CODE, str(fields).replace("'", '"'), scope, now,
                 now + timedelta(days=1)),
            )  # fmt: skip
            ids.append(grant_id)
    return ids


def ask(published: Published, ids: list[str], request: Request) -> Any:
    extra: dict[str, str] = {}
    if request.grant is not None:
        extra["X-Grant-Id"] = ids[request.grant] if 0 <= request.grant < len(ids) else "GR-x"
    sent = headers(published.keys["app"], request.applicant, **extra)
    if request.export:
        return published.client.get(f"/v1/resources/{CODE}/export", headers=sent)
    params: dict[str, str] = dict(request.filters)
    if request.wanted is not None:
        params["fields"] = ",".join(request.wanted)
    return published.client.get(f"/v1/resources/{CODE}/records", params=params, headers=sent)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(grants=grant_specs, request=requests())
def test_every_answer_is_the_models_and_never_more_than_one_grant(
    published: Published, grants: list[GrantSpec], request: Request
) -> None:
    ids = install(published, grants)
    response = ask(published, ids, request)
    status, chosen = expected(grants, request)
    event(f"status {status}")
    assert response.status_code == status, (grants, request, response.text)
    if status != 200:
        return
    assert chosen is not None
    granted = [f for f in FIELDS if f in chosen.fields]
    if request.export:
        table = pq.read_table(pa.BufferReader(response.content))
        assert table.column_names == granted  # the grant's columns, nothing else
        assert table.num_rows == len(ROWS[CODE])
        return
    body = response.json()
    shown = granted if request.wanted is None else [f for f in granted if f in request.wanted]
    assert body["grant_id"] == ids[grants.index(chosen)] or grants.count(chosen) > 1
    assert body["fields"] == shown
    masked = [f for f in FIELDS if f in PERSONAL and f not in chosen.fields]
    assert body["masked_fields"] == masked
    rows = model_rows(chosen, request)
    assert body["count"] == len(rows)
    resource = published.client.app.state.services.catalog.resource(CODE)
    by_key = {(r["certificate_no"], r["owner_id"]): r for r in rows}
    for record in body["records"]:
        assert set(record) <= set(shown) | set(masked)  # never a field outside the grant
        for name in masked:
            assert record[name] in {None} | {
                mask_value(resource.field(name), r[name]) for r in rows
            }
        if "certificate_no" in shown and "owner_id" in shown:
            source = by_key[(record["certificate_no"], record["owner_id"])]
            assert all(record[f] == source[f] for f in shown)


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_the_model_notices_a_merged_grant(published: Published) -> None:
    """The test above would catch the old behaviour (a union of grants): here the model
    and a union disagree on a request the old code answered with the union."""
    grants = [GrantSpec(frozenset({"unit_id", "status"}), False),
              GrantSpec(frozenset({"certificate_no", "owner_id", "owner_name"}), True)]  # fmt: skip
    request = Request(True, (), None, None, None)
    assert expected(grants, request) == (409, None)
    ids = install(published, grants)
    assert ask(published, ids, request).status_code == 409
    assert datetime.now() > datetime(2026, 1, 1)
