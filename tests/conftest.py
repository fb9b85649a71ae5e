"""Fixtures shared by every test: settings under a temporary HUB_HOME and real servers.

Tests talk to the PostgreSQL and MariaDB servers running on this machine. A test whose
server is missing is skipped with the reason locally, and fails when CI=true.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hub.catalog import Catalog, load_catalog
from hub.settings import PROJECT_ROOT, Settings, reset_settings

PG_ADMIN = os.environ.get("HUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
MARIA_HOST = os.environ.get("HUB_TEST_MARIADB_HOST", "127.0.0.1")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_missing(what: str) -> None:
    """Skip locally; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI (CI=true) and is not reachable")
    pytest.skip(f"{what} is not reachable")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(PROJECT_ROOT / "catalogs")


@pytest.fixture
def hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh HUB_HOME under the demo profile (the tests' opt-in: connections of the
    simulated systems from HUB_HOME/systems/demo.env, the hub's keys generated); every
    other HUB_* variable of the outer environment is cleared. A test of a deployment
    removes HUB_PROFILE (see ``deployment_profile``)."""
    for name in list(os.environ):
        if name.startswith("HUB_") and not name.startswith("HUB_TEST_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("HUB_HOME", str(home))
    monkeypatch.setenv("HUB_PROFILE", "demo")
    monkeypatch.setenv("HUB_SIM_SFTP_PORT", str(free_port()))
    monkeypatch.setenv("HUB_SIM_REGISTRY_PORT", str(free_port()))
    reset_settings()
    yield home
    reset_settings()


@pytest.fixture
def settings(hub_home: Path) -> Settings:
    return Settings()


@pytest.fixture
def deployment_profile(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HUB_HOME as ``hub_home`` gives it, outside the demo profile: nothing defaults."""
    monkeypatch.delenv("HUB_PROFILE")
    reset_settings()
    return hub_home


def _pg_database() -> Iterator[str]:
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        service_missing(f"PostgreSQL ({PG_ADMIN})")
        raise
    name = f"hub_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    yield from _pg_database()


@pytest.fixture
def postgres_url_2() -> Iterator[str]:
    """A second new database (a source system beside a warehouse)."""
    yield from _pg_database()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A new, empty MariaDB database; dropped afterwards."""
    import pymysql

    try:
        admin = pymysql.connect(host=MARIA_HOST, user="root", password="", connect_timeout=3)
    except pymysql.err.OperationalError:
        service_missing(f"MariaDB ({MARIA_HOST}:3306)")
        raise
    name = f"hub_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"mysql+pymysql://root@{MARIA_HOST}:3306/{name}?charset=utf8mb4"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def set_deployment_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys a deployment sets as secrets (only the embedded demo makes its own)."""
    from hub.keyring import encode_key
    from hub.signing import Profile, generate_signer

    profile = Profile(os.environ.get("HUB_CRYPTO_PROFILE", "standard"))
    monkeypatch.setenv("HUB_SECRET_EVIDENCE_KEY", generate_signer(profile).to_secret())
    monkeypatch.setenv("HUB_SECRET_AUDIT_KEY", generate_signer(profile).to_secret())
    for name in ("SUBJECT_KEY", "CURSOR_KEY"):
        monkeypatch.setenv(f"HUB_SECRET_{name}", encode_key(os.urandom(32)))


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(
    request: pytest.FixtureRequest, hub_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Each warehouse test runs on both engines; HUB_WAREHOUSE_URL is set to match."""
    if request.param == "duckdb":
        url = f"duckdb:///{hub_home / 'warehouse.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_url")
        set_deployment_secrets(monkeypatch)  # a PostgreSQL hub is a deployment: no defaults
    monkeypatch.setenv("HUB_WAREHOUSE_URL", url)
    reset_settings()
    return url


@contextmanager
def duckdb_held_elsewhere(warehouse_url: str) -> Iterator[None]:
    """Another process holds the DuckDB file open read-write (as a sync or publish does)
    until the block ends: no other process can open it meanwhile."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('holding', flush=True); time.sleep(60)",
            warehouse_url.removeprefix("duckdb:///"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield
    finally:
        holder.kill()
        holder.wait()
