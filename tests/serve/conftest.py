"""A published warehouse with known rows, grants and keys, for the read API.

Version tables and ``ops.publish_log`` rows are written the way hub.publish leaves them
(and, beside DuckDB, exported to the serving files by the same ``sync_serving``), with a
handful of rows whose answers are known."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from hub.catalog import Catalog
from hub.catalog.models import DemandSpec, RowScope
from hub.demand import DemandBook
from hub.keys import PrincipalKind, create_key
from hub.publish import ensure_publish_log, shared_view, version_table
from hub.serve import create_app
from hub.serve.sources import _typed_value
from hub.settings import Settings
from hub.storage.duckdb import DuckDBWarehouse
from hub.storage.interface import open_ops, open_warehouse
from hub.storage.sql import quote_ident
from tests.conftest import set_deployment_secrets
from tests.serve.identity import CURRENT, KEY_APPS, TestIdentityProvider

OWNER = "360203199001011004"  # owns one current right
SELLER = "36020319900102100X"  # owns one current and one historical right
NOBODY = "360203199912310021"  # owns nothing
CERT = "赣(2020)景德镇市不动产权第0000001号"

ROWS: dict[str, list[dict[str, Any]]] = {
    "property_rights": [
        {"certificate_no": CERT, "unit_id": "U1", "owner_id": OWNER, "owner_name": "张三",
         "share": "1.0000", "co_ownership": "单独所有", "registered_date": "2020-05-01",
         "status": "现势", "updated_at": "2020-05-01 10:00:00"},
        {"certificate_no": "赣(2018)景德镇市不动产权第0000002号", "unit_id": "U2",
         "owner_id": SELLER, "owner_name": "李四", "share": "0.5000",
         "co_ownership": "按份共有", "registered_date": "2018-03-02", "status": "现势",
         "updated_at": "2018-03-02 09:00:00"},
        {"certificate_no": "赣(2010)景德镇市不动产权第0000003号", "unit_id": "U3",
         "owner_id": SELLER, "owner_name": "李四", "share": "1.0000",
         "co_ownership": "单独所有", "registered_date": "2010-01-01", "status": "历史",
         "updated_at": "2015-01-01 09:00:00"},
    ],
    "sales_contracts": [
        {"contract_no": "HT2026-0001", "unit_id": "U1", "seller_id": SELLER, "buyer_id": OWNER,
         "price": "1200000.00", "signed_date": "2026-10-01", "contract_type": "存量房",
         "status": "已备案", "updated_at": "2026-10-01 10:00:00"},
        {"contract_no": "HT2026-0002", "unit_id": "U2", "seller_id": NOBODY, "buyer_id": SELLER,
         "price": "800000.00", "signed_date": "2026-10-02", "contract_type": "存量房",
         "status": "已备案", "updated_at": "2026-10-02 10:00:00"},
    ],
    "tax_payments": [
        {"payment_id": "P1", "taxpayer_id": OWNER, "tax_type": "契税", "amount": "6625.00",
         "paid_date": "2020-04-28", "tax_period": "2020-04", "certificate_no": CERT,
         "updated_at": "2020-04-28 10:00:00"},
    ],
    "tax_clearances": [
        {"clearance_no": "WQ1", "taxpayer_id": OWNER, "issued_date": "2026-11-01",
         "valid_until": "2099-01-31", "result": "无欠税", "updated_at": "2026-11-01 10:00:00"},
        {"clearance_no": "WQ2", "taxpayer_id": SELLER, "issued_date": "2026-11-01",
         "valid_until": "2099-01-31", "result": "有欠税", "updated_at": "2026-11-01 10:00:00"},
    ],
    "social_insurance_contributions": [
        {"citizen_id": OWNER, "insurance_type": "企业职工基本养老保险", "period": f"2026{m:02d}",
         "contribution_base": "4314.00", "personal_amount": "345.12",
         "employer_amount": "690.24", "paid_date": f"2026-{m:02d}-15",
         "updated_at": f"2026-{m:02d}-15 10:00:00"}
        for m in range(1, 8)
    ],
}  # fmt: skip


@dataclass
class Published:
    client: TestClient
    keys: dict[str, str]
    settings: Settings
    book_demands: dict[str, str]


def publish_rows(settings: Settings, catalog: Catalog) -> None:
    """v1 of each resource in ROWS, current, with its view and publish_log row."""
    now = datetime.now(UTC).replace(tzinfo=None)
    with open_warehouse(settings.warehouse_url) as warehouse:
        ensure_publish_log(warehouse)
        for code, rows in ROWS.items():
            resource = catalog.resource(code)
            table = version_table(code, 1)
            columns = ", ".join(
                f"{quote_ident(f.name)} {warehouse.sql_type(f.type)}" for f in resource.fields
            )
            warehouse.execute(f"CREATE TABLE {table} ({columns})")
            marks = ", ".join("?" for _ in resource.fields)
            for row in rows:
                warehouse.execute(
                    f"INSERT INTO {table} VALUES ({marks})",
                    [_typed_value(resource, f.name, row.get(f.name)) for f in resource.fields],
                )
            warehouse.execute(f"CREATE VIEW {shared_view(code)} AS SELECT * FROM {table}")
            warehouse.execute(
                "INSERT INTO ops.publish_log VALUES (?, 1, ?, ?, ?, ?, TRUE, 'published')",
                (code, f"{code}-gate-1", len(rows), now - timedelta(hours=1), now),
            )
            if isinstance(warehouse, DuckDBWarehouse):
                from hub.serve.snapshots import sync_serving

                sync_serving(warehouse, settings, resource)


def grant(book: DemandBook, app: str, scenario: str, resource: str, fields: tuple[str, ...],
          rows: RowScope) -> str:  # fmt: skip
    spec = DemandSpec(scenario=scenario, resource=resource, fields=fields, purpose="一窗受理核验",
                      legal_basis="《政务信息资源共享管理暂行办法》", rows=rows)  # fmt: skip
    demand, _ = book.submit(app, spec, by="dev")
    provider = book.catalog.resource(resource).provider
    book.approve(demand.demand_id, department=provider, by="officer")
    return demand.demand_id


@pytest.fixture
def published(
    warehouse_url: str, catalog: Catalog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Published]:
    set_deployment_secrets(monkeypatch)
    monkeypatch.setenv("HUB_API_CACHE_SECONDS", "0")  # a revocation acts at once
    idp = CURRENT["idp"] = TestIdentityProvider(tmp_path)
    monkeypatch.setenv("HUB_IDP_JWKS", str(idp.jwks_path))
    monkeypatch.setenv("HUB_IDP_ISSUER", idp.issuer)
    settings = Settings()
    publish_rows(settings, catalog)
    demands = {}
    with open_ops(settings) as store:
        book = DemandBook(store, catalog)
        app, scenario = "housing_transfer_window", "second_hand_housing_transfer"
        demands["rights"] = grant(
            book, app, scenario, "property_rights",
            ("certificate_no", "unit_id", "owner_id", "share", "status"), RowScope.applicant,
        )  # fmt: skip
        demands["payments"] = grant(
            book, app, scenario, "tax_payments",
            ("payment_id", "taxpayer_id", "tax_type", "amount", "certificate_no"), RowScope.all,
        )  # fmt: skip
        demands["clearances"] = grant(
            book, app, scenario, "tax_clearances",
            ("clearance_no", "taxpayer_id", "result", "valid_until"), RowScope.applicant,
        )  # fmt: skip
        talent = grant(
            book, "talent_housing", "talent_apartment", "social_insurance_contributions",
            ("citizen_id", "insurance_type", "period", "paid_date"), RowScope.applicant,
        )  # fmt: skip
        demands["talent"] = talent
        # the provident-fund system may read a contract of its applicant as the buyer only
        demands["contracts"] = grant(
            book, "provident_fund_system", "provident_fund_loan", "sales_contracts",
            ("contract_no", "buyer_id", "price", "status"), RowScope.applicant,
        )  # fmt: skip
        keys = {
            "app": create_key(store, PrincipalKind.application, app, by="t").key,
            "talent": create_key(store, PrincipalKind.application, "talent_housing", by="t").key,
            "fund": create_key(
                store, PrincipalKind.application, "provident_fund_system", by="t"
            ).key,
            "newborn": create_key(
                store, PrincipalKind.application, "newborn_one_chain", by="t"
            ).key,
            "housing": create_key(store, PrincipalKind.department, "housing", by="t").key,
        }
    KEY_APPS.update(
        {
            keys["app"]: app,
            keys["talent"]: "talent_housing",
            keys["newborn"]: "newborn_one_chain",
            keys["fund"]: "provident_fund_system",
        }
    )
    with TestClient(create_app(settings, catalog)) as client:
        yield Published(client, keys, settings, demands)


def headers(key: str, applicant: str | None = None, **extra: str) -> dict[str, str]:
    found = {
        "Authorization": f"Bearer {key}",
        "X-End-User-Id": "window-officer-07",
        "X-Purpose": quote("二手房转移登记核验"),
    }
    if applicant:
        idp = CURRENT["idp"]
        found["X-Applicant-Assertion"] = idp.assertion(applicant, KEY_APPS.get(key, "unknown"))
    found.update(extra)
    return found
