from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from hub.catalog import Catalog
from hub.catalog.models import SharingType
from hub.demand import DemandBook
from hub.settings import Settings
from hub.storage.interface import OpsStore, open_ops

# A Monday: ten working days later (no holidays in between) is Monday 7 December.
MONDAY = datetime(2026, 11, 23, 2, 0)  # 10:00 in Jingdezhen
DEADLINE = datetime(2026, 12, 7, 16, 0)  # 24:00 local on 7 December


@pytest.fixture
def demand_catalog(catalog: Catalog) -> Catalog:
    """The project's catalog, plus one resource that is not shared (sharing type none)."""
    mortgages = catalog.resource("mortgages").model_copy(
        update={"sharing_type": SharingType.none, "sharing_conditions": "涉及金融机构商业秘密"}
    )
    resources = tuple(mortgages if r.code == "mortgages" else r for r in catalog.resources)
    return catalog.model_copy(update={"resources": resources})


@pytest.fixture
def store(warehouse_url: str) -> Iterator[OpsStore]:
    """The ops store of each set-up: PostgreSQL's ops schema, or the SQLite file beside
    the embedded DuckDB warehouse."""
    with open_ops(Settings()) as opened:
        yield opened


@pytest.fixture
def book(store: OpsStore, demand_catalog: Catalog) -> DemandBook:
    return DemandBook(store, demand_catalog)
