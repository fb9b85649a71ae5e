"""docker-compose.yml (the distributed deployment) is complete and keeps secrets out.

No Docker engine here: the file is parsed and checked, not run.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from hub.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
SERVICES = {
    "postgres",
    "redis",
    "housing-db",
    "tax-db",
    "department-sim",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker-1",
    "airflow-worker-2",
    "hub-api",
}
ONE_SHOT = {"airflow-init"}  # exits when done: the others wait for its successful exit
AIRFLOW = {s for s in SERVICES if s.startswith("airflow-")}
RUNS_HUB_CODE = AIRFLOW | {"department-sim", "hub-api"}
# what the hub's Settings needs in production: the warehouse, every department connection
# of the catalog, and the secrets the connectors ask for
HUB_REQUIRED = {
    "HUB_HOME",
    "HUB_WAREHOUSE_URL",
    "HUB_CONN_HOUSING",
    "HUB_CONN_TAX",
    "HUB_CONN_SOCIAL",
    "HUB_CONN_REGISTRY",
    "HUB_SECRET_REGISTRY",
}
REQUIRED_VAR = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$|REQUIREPASS")
URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]+)@")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_service_exists_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= SERVICES
    for name in SERVICES - ONE_SHOT:
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test != ["NONE"], f"{name} has no healthcheck"
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no"


def test_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for other, rule in depends.items():
            assert other in services, f"{name} depends on unknown {other}"
            expected = "service_completed_successfully" if other in ONE_SHOT else "service_healthy"
            assert rule == {"condition": expected}, f"{name} -> {other}"
    for name in AIRFLOW - ONE_SHOT:
        assert services[name]["depends_on"]["airflow-init"] == {
            "condition": "service_completed_successfully"
        }
        assert {"postgres", "redis"} <= set(services[name]["depends_on"])


def _strings(value: Any, where: str) -> list[tuple[str, str]]:
    """Every string in the file with where it is (key path)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _strings(v, f"{where}[{i}]")]
    return [(where, str(value))]


def test_every_secret_comes_from_the_environment(compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                assert REQUIRED_VAR.match(value), f"{name}: {key} must be ${{{key}:?...}}"
                checked += 1
    for where, text in _strings(compose, "compose"):
        for password in URL_PASSWORD.findall(text):
            assert REQUIRED_VAR.match(password), f"{where}: literal password in a URL"
            checked += 1
        if "--requirepass" in text:
            checked += 1
    assert checked > 20
    # and the file names no literal that looks like a password
    assert not re.search(r"(?i)password\s*[:=]\s*['\"]?(?!\$\{)[A-Za-z0-9]", COMPOSE.read_text())


def test_the_redis_password_is_required(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert REQUIRED_VAR.match(command[command.index("--requirepass") + 1])


def test_hub_services_have_the_production_settings(compose: dict[str, Any]) -> None:
    for name in RUNS_HUB_CODE:
        env = environment(compose["services"][name])
        missing = HUB_REQUIRED - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}"
        assert env["HUB_WAREHOUSE_URL"].startswith("postgresql://")
        assert "@postgres:5432/warehouse" in env["HUB_WAREHOUSE_URL"]


def test_hub_connections_cover_the_catalog(compose: dict[str, Any]) -> None:
    from hub.catalog import load_catalog

    catalog = load_catalog(PROJECT_ROOT / "catalogs")
    env = environment(compose["services"]["airflow-worker-1"])
    for department in catalog.departments:
        assert f"HUB_CONN_{department.system.connection.upper()}" in env


def test_airflow_runs_celery_on_redis_and_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in AIRFLOW:
        env = environment(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert re.match(
            r"^redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/\d+$",
            env["AIRFLOW__CELERY__BROKER_URL"],
        ), name
        assert re.match(
            r"^db\+postgresql://airflow:\$\{[^}]+\}@postgres:5432/airflow$",
            env["AIRFLOW__CELERY__RESULT_BACKEND"],
        ), name
        assert re.match(
            r"^postgresql\+psycopg2://airflow:\$\{[^}]+\}@postgres:5432/airflow$",
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        ), name
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/app/dags"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    commands = {name: " ".join(services[name]["command"]) for name in AIRFLOW - ONE_SHOT}
    assert commands["airflow-apiserver"].startswith("airflow api-server")
    assert commands["airflow-scheduler"] == "airflow scheduler"
    assert commands["airflow-dag-processor"] == "airflow dag-processor"
    assert commands["airflow-triggerer"] == "airflow triggerer"
    workers = [n for n, c in commands.items() if c.startswith("airflow celery worker")]
    assert sorted(workers) == ["airflow-worker-1", "airflow-worker-2"]
    assert "airflow db migrate" in " ".join(services["airflow-init"]["command"])


def test_workers_reach_the_execution_api_and_do_not_share_ports(compose: dict[str, Any]) -> None:
    """What tests/orchestration/test_celery.py needed to run the same set-up as processes:
    every Airflow service names the api-server's execution API, and workers sharing one
    network namespace serve their task logs on different ports."""
    services = compose["services"]
    api_command = services["airflow-apiserver"]["command"]
    api_port = api_command[api_command.index("--port") + 1]
    for name in AIRFLOW:
        env = environment(services[name])
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            f"http://airflow-apiserver:{api_port}/execution/"
        ), name
    log_ports: dict[str, set[str]] = {}
    for name in AIRFLOW:
        namespace = services[name].get("network_mode", name)
        if "celery worker" in " ".join(services[name]["command"]):
            port = environment(services[name]).get("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT")
            ports = log_ports.setdefault(namespace, set())
            assert (port or "8793") not in ports, f"{name}: log server port taken in {namespace}"
            ports.add(port or "8793")


def test_one_image_built_from_the_lock_file(compose: dict[str, Any]) -> None:
    for name in RUNS_HUB_CODE:
        service = compose["services"][name]
        assert service["image"] == "exchange-hub:latest", name
        assert service["build"]["dockerfile"] == "docker/Dockerfile", name
    dockerfile = (PROJECT_ROOT / "docker" / "Dockerfile").read_text()
    assert "COPY pyproject.toml uv.lock" in dockerfile
    assert dockerfile.count("uv sync --frozen --no-default-groups") == 2
    example = (PROJECT_ROOT / "docker" / "env.example").read_text()
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE.read_text()))
    named = set(re.findall(r"^([A-Z][A-Z0-9_]*)=$", example, re.MULTILINE))
    assert required == named, "docker/env.example names exactly the required variables"
