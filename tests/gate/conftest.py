"""Fixtures of the gate tests; the candidate data helpers are in ``gate_data``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import Settings, reset_settings


@pytest.fixture
def gate_settings(warehouse_url: str, hub_home: Path) -> Settings:
    """Settings on the parametrised warehouse (DuckDB file or a fresh PostgreSQL db)."""
    reset_settings()
    return Settings()
