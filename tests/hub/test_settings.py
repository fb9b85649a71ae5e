"""Settings fail closed: outside the demo profile a missing connection or secret is one
error naming its variable; placeholders are refused in every profile; the demo opts in
with HUB_PROFILE=demo and then reads the simulator's HUB_HOME/systems/demo.env."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.catalog import Catalog
from hub.cli import app
from hub.keyring import secret_bytes
from hub.settings import Settings, SettingsError, reset_settings


def write_demo_env(home: Path, text: str) -> None:
    folder = home / "systems"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demo.env").write_text(text)


DEMO_ENV = (
    "# the simulator's\n"
    "HUB_CONN_HOUSING=sqlite:////tmp/housing.db\n"
    "HUB_CONN_REGISTRY=http://127.0.0.1:8765/api/v1\n"
    "HUB_SECRET_REGISTRY=demo-token-0123456789\n"
)


def test_a_missing_connection_names_its_variable(deployment_profile: Path) -> None:
    settings = Settings()
    assert not settings.demo
    with pytest.raises(SettingsError, match=r"^HUB_CONN_HOUSING is not set") as error:
        settings.connection("housing")
    assert "HUB_PROFILE=demo" in str(error.value)  # and how the demo opts in
    with pytest.raises(SettingsError, match=r"^HUB_SECRET_REGISTRY is not set"):
        settings.secret("registry")


def test_no_fallback_to_the_simulator_outside_the_demo(deployment_profile: Path) -> None:
    # the simulator's file is there, but a deployment never reads it
    write_demo_env(deployment_profile, DEMO_ENV)
    settings = Settings()
    assert settings.demo_environment() == {}
    with pytest.raises(SettingsError, match="HUB_CONN_HOUSING is not set"):
        settings.connection("housing")
    with pytest.raises(SettingsError, match="HUB_SECRET_REGISTRY is not set"):
        settings.secret("registry")


def test_the_hub_keys_are_not_generated_outside_the_demo(deployment_profile: Path) -> None:
    settings = Settings()  # the embedded DuckDB warehouse: still no generated keys
    assert settings.warehouse_engine == "duckdb"
    with pytest.raises(SettingsError, match="HUB_SECRET_CURSOR_KEY is not set"):
        secret_bytes(settings, "cursor_key")
    assert not (settings.home / "secrets").exists()


def test_the_demo_profile_reads_the_simulators_file(
    hub_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings()
    assert settings.demo
    with pytest.raises(SettingsError, match=r"^HUB_CONN_HOUSING is not set.*hub simulate"):
        settings.connection("housing")
    write_demo_env(hub_home, DEMO_ENV)
    assert settings.connection("housing") == "sqlite:////tmp/housing.db"
    assert settings.secret("registry") == "demo-token-0123456789"
    with pytest.raises(SettingsError, match="HUB_CONN_TAX is not set"):
        settings.connection("tax")
    # the environment wins over the file
    monkeypatch.setenv("HUB_CONN_HOUSING", "postgresql://reader:s3cr3t-long@db/housing")
    assert settings.connection("housing") == "postgresql://reader:s3cr3t-long@db/housing"
    # and the hub's own keys may be generated, once, under HUB_HOME/secrets
    key = secret_bytes(settings, "cursor_key")
    assert secret_bytes(settings, "cursor_key") == key
    assert (hub_home / "secrets" / "cursor_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("profile", ["deployment", "demo"])
def test_placeholder_secrets_are_refused(
    profile: str, hub_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_PROFILE", profile)
    settings = Settings()
    monkeypatch.setenv("HUB_CONN_TAX", "mysql://reader:changeme@tax-db:3306/jsgz")
    with pytest.raises(SettingsError, match="HUB_CONN_TAX: the secret is a placeholder"):
        settings.connection("tax")
    for value in ("changeme", "secret", "  ", ""):
        monkeypatch.setenv("HUB_SECRET_REGISTRY", value)
        with pytest.raises(SettingsError, match="HUB_SECRET_REGISTRY: empty or a placeholder"):
            settings.secret("registry")
    monkeypatch.setenv("HUB_SECRET_CURSOR_KEY", "changeme")
    with pytest.raises(SettingsError, match="HUB_SECRET_CURSOR_KEY: empty or a placeholder"):
        secret_bytes(settings, "cursor_key")


def test_an_unknown_profile_is_refused(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PROFILE", "production-ish")
    with pytest.raises(ValueError, match="profile"):
        Settings()


def test_sync_outside_the_demo_refuses_with_the_variable(
    deployment_profile: Path, catalog: Catalog
) -> None:
    from hub.sync import sync

    results = sync(Settings(), catalog, department="tax")
    assert results and all(r.error and "HUB_CONN_TAX is not set" in r.error for r in results)
    reset_settings()
    result = CliRunner().invoke(app, ["sync", "--source", "tax", "--json"])
    assert result.exit_code == 1
    assert "resource(s) failed" in result.output
