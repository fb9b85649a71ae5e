"""Moved to :mod:`hub.storage` (the interface and one module per engine); these names stay
importable from here for the modules that still use them."""

from hub.storage.duckdb import DuckDBWarehouse
from hub.storage.interface import (
    FRESHNESS_DDL,
    GATE_RESULTS_DDL,
    GATE_RUNS_DDL,
    PUBLISH_LOG_DDL,
    SCHEMAS,
    Warehouse,
    open_warehouse,
)
from hub.storage.postgres import PostgresWarehouse
from hub.storage.sql import quote_ident

__all__ = [
    "FRESHNESS_DDL",
    "GATE_RESULTS_DDL",
    "GATE_RUNS_DDL",
    "PUBLISH_LOG_DDL",
    "SCHEMAS",
    "DuckDBWarehouse",
    "PostgresWarehouse",
    "Warehouse",
    "open_warehouse",
    "quote_ident",
]
