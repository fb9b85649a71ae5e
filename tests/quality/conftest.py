"""Fixtures of the quality-loop tests; the data helpers are in ``quality_data``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import Settings, reset_settings


@pytest.fixture
def quality_settings(warehouse_url: str, hub_home: Path) -> Settings:
    reset_settings()
    return Settings()
