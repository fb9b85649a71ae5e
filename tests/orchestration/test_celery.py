"""docker-compose.yml's Airflow, run as processes: the CeleryExecutor end to end.

No Docker engine runs here, so the cluster's configuration is proven on the machine's own
PostgreSQL and Redis: the AIRFLOW__* variables are read from docker-compose.yml (only the
hosts, ports, paths, secrets and sizes change), `airflow db migrate` runs on a fresh
metadata database, then the api-server, scheduler, dag-processor and one Celery worker
start as separate processes. ``sync_tax`` is unpaused and triggered through the REST API,
its tasks travel through Redis to the worker, and the warehouse (a fresh PostgreSQL
database) ends up holding exactly the rows the simulator's manifest reports.

    uv run --frozen pytest tests/orchestration/test_celery.py
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hub.airflow_ctl import airflow_executable
from hub.catalog import Catalog
from hub.orchestration.embedded import hub_environment
from hub.settings import PROJECT_ROOT, Settings, reset_settings
from hub.storage.interface import open_warehouse
from simulator.settings import SimulatorSettings
from tests.conftest import free_port, service_missing

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(420)]

# A Redis database of its own; the queue and worker names are unique per run on top of it.
REDIS_URL = os.environ.get("HUB_TEST_REDIS", "redis://127.0.0.1:6379/13")
COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DEPARTMENT = "tax"  # SQL on a SQLite file under HUB_HOME: no extra server to start
SCALE = 0.1
RUN_TIMEOUT_S = 180.0
START_TIMEOUT_S = 120.0


def compose_service(name: str) -> dict[str, Any]:
    """One service of docker-compose.yml, anchors and merge keys resolved."""
    service: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"][name]
    return service


def compose_airflow_environment() -> dict[str, str]:
    """The AIRFLOW* variables docker-compose.yml gives the scheduler (every Airflow
    service shares them through one anchor)."""
    env = compose_service("airflow-scheduler")["environment"]
    return {str(k): str(v) for k, v in env.items() if str(k).startswith("AIRFLOW")}


def compose_command(name: str) -> list[str]:
    """A service's ``airflow ...`` command, without the leading ``airflow``."""
    command = [str(part) for part in compose_service(name)["command"]]
    assert command[0] == "airflow", command
    return command[1:]


def compose_healthcheck(name: str) -> str:
    """A CMD-SHELL healthcheck of docker-compose.yml as a shell command (``$$`` is ``$``)."""
    test = compose_service(name)["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL", test
    return str(test[1]).replace("$$", "$")


def _database_url(url: str, driver: str) -> str:
    return url.replace("postgresql://", f"{driver}://", 1)


@dataclass
class Cluster:
    """Airflow's services as subprocesses, each in its own process group, logs in files."""

    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def run(self, name: str, *args: str, timeout: float) -> None:
        """Run an ``airflow`` command to completion; fails the test with its log tail."""
        with self.log(name).open("wb") as out:
            done = subprocess.run(
                [airflow_executable(), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        if done.returncode != 0:
            pytest.fail(f"airflow {' '.join(args)} exited {done.returncode}\n{self.tail(name)}")

    def start(self, name: str, *args: str) -> None:
        with self.log(name).open("wb") as out:
            self.processes[name] = subprocess.Popen(
                [airflow_executable(), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() signals the group
            )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                pytest.fail(f"airflow {name} exited ({process.returncode})\n{self.tails()}")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log(name)
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        return f"---- {path.name} (last {lines} lines)\n" + "\n".join(text[-lines:])

    def tails(self) -> str:
        return "\n".join(self.tail(p.stem) for p in sorted(self.log_dir.glob("*.log")))

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM every group (workers finish warm), wait, then SIGKILL what is left."""
        for process in reversed(self.processes.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            # the group outlives its leader when a child lingers: kill the whole group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        """On an error inside, print the tail of every log (pytest shows it; a failure of
        ``_wait`` or ``check_alive`` carries them already)."""
        try:
            yield
        except Exception:
            print(self.tails())
            raise


@pytest.fixture
def redis_broker() -> Iterator[tuple[str, str]]:
    """(broker URL, unique token for the queue and worker name); keys removed afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.RedisError:
        service_missing(f"Redis ({REDIS_URL})")
    token = f"hubtest-{uuid.uuid4().hex[:10]}"
    try:
        yield REDIS_URL, token
    finally:
        for key in client.scan_iter(match=f"*{token}*"):
            client.delete(key)
        for binding in client.scan_iter(match="_kombu.binding.*"):
            mine = [m for m in client.smembers(binding) if token.encode() in m]
            if mine:
                client.srem(binding, *mine)
        if not any(client.scan_iter(match="_kombu.binding.*")):  # no other run left
            client.delete("_kombu.binding_deadlines")
        client.close()


@pytest.fixture
def warehouse_settings(
    hub_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The hub's settings with the warehouse on a fresh PostgreSQL database."""
    monkeypatch.setenv("HUB_WAREHOUSE_URL", postgres_url)
    reset_settings()
    return Settings()


@pytest.fixture
def cluster(
    tmp_path: Path,
    warehouse_settings: Settings,
    postgres_url_2: str,
    redis_broker: tuple[str, str],
) -> Iterator[Cluster]:
    """docker-compose.yml's Airflow environment, pointed at this machine; stopped after."""
    broker_url, token = redis_broker
    airflow_home = tmp_path / "airflow"
    (airflow_home / "auth").mkdir(parents=True)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    api_port = free_port()
    from cryptography.fernet import Fernet

    local = {
        # what compose sets to container paths, service hosts or ${SECRETS}
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
            airflow_home / "auth" / "passwords.json"
        ),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _database_url(postgres_url_2, "postgresql+psycopg2"),
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": _database_url(postgres_url_2, "db+postgresql"),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        # sized for 2 busy cores (compose: parallelism 16, Airflow's defaults elsewhere)
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__API__WORKERS": "1",
    }
    extra = {
        # ports of their own, so parallel runs and a local Airflow don't collide
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        # this run's own Celery queue on the shared broker
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": token,
        # only the run the test triggers: no scheduled run appears on unpause
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__COSMOS__CACHE_DIR": str(airflow_home / "cosmos"),  # not the shared /tmp one
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "False",
    }
    compose_env = compose_airflow_environment()
    unresolved = {k for k, v in compose_env.items() if "${" in v or v.startswith("/")} - set(local)
    assert not unresolved, f"compose variables without a local value: {sorted(unresolved)}"
    airflow_env = {**compose_env, **local, **extra}

    hub_env = hub_environment(warehouse_settings)
    # the simulated department's database (compose names it in HUB_CONN_*, as here)
    hub_env[f"HUB_CONN_{DEPARTMENT.upper()}"] = SimulatorSettings().connections()[DEPARTMENT]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HUB_"))}
    base["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])
    running = Cluster(env={**base, **hub_env, **airflow_env}, log_dir=log_dir)
    try:
        yield running
    finally:
        running.stop()


def _wait(what: str, cluster: Cluster, timeout: float, probe: Any) -> Any:
    """Call ``probe()`` every second until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            found = probe()
            if found:
                return found
        time.sleep(1.0)
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{cluster.tails()}")


def start_services(cluster: Cluster, token: str) -> str:
    """What compose's airflow-init, api-server, scheduler, dag-processor and a worker do,
    with this run's ports and names; returns the admin password."""
    env = cluster.env
    assert "airflow db migrate" in " ".join(compose_service("airflow-init")["command"])
    cluster.run("db-migrate", "db", "migrate", timeout=240)
    password = secrets.token_urlsafe(16)
    Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).write_text(
        json.dumps({"admin": password})
    )
    api_server = compose_command("airflow-apiserver")
    api_server[api_server.index("--port") + 1] = env["AIRFLOW__API__PORT"]
    worker = [
        part.replace("worker-1@", f"{token}@") for part in compose_command("airflow-worker-1")
    ]
    cluster.start("api-server", *api_server)
    cluster.start("scheduler", *compose_command("airflow-scheduler"))
    cluster.start("dag-processor", *compose_command("airflow-dag-processor"))
    cluster.start("worker", *worker)
    return password


def check_compose_healthchecks(cluster: Cluster, token: str) -> None:
    """Run compose's dag-processor and worker healthchecks against the running processes
    (``$HOSTNAME``: a container's host name, which Airflow's jobs and Celery's ``%h`` use)."""
    checks = {
        "dag-processor-health": compose_healthcheck("airflow-dag-processor"),
        "worker-health": compose_healthcheck("airflow-worker-1").replace("worker-1@", f"{token}@"),
    }
    running = {}
    for name, command in checks.items():
        with cluster.log(name).open("wb") as out:
            running[name] = subprocess.Popen(
                ["sh", "-c", command],
                env={**cluster.env, "HOSTNAME": socket.gethostname()},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    for name, process in running.items():
        assert process.wait(timeout=120) == 0, f"{checks[name]}\n{cluster.tail(name)}"


def test_a_sync_dag_runs_through_the_celery_executor(
    cluster: Cluster, warehouse_settings: Settings, catalog: Catalog, postgres_url_2: str
) -> None:
    import psycopg

    settings = warehouse_settings
    env = cluster.env
    token = env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    dag_id = f"sync_{DEPARTMENT}"
    api_url = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    scheduler_health = (
        f"http://127.0.0.1:{env['AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT']}/health"
    )
    with cluster.explained(), httpx.Client(base_url=api_url, timeout=10) as api:
        # the simulated department systems (compose's department-sim) beside the migration
        with cluster.log("simulate").open("wb") as out:
            simulator = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "simulate", "--scale", str(SCALE)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        password = start_services(cluster, token)
        assert simulator.wait(timeout=120) == 0, cluster.tail("simulate")
        manifest = json.loads((settings.systems_dir / "manifest.json").read_text())

        def api_healthy() -> bool:  # compose's api-server healthcheck
            body = api.get("/api/v2/monitor/health").json()
            return bool(body["metadatabase"]["status"] == "healthy")

        _wait("api-server healthy", cluster, START_TIMEOUT_S, api_healthy)
        login = api.post("/auth/token", json={"username": "admin", "password": password})
        assert login.status_code == 201, login.text
        api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        _wait(
            f"{dag_id} parsed by the dag-processor",
            cluster,
            START_TIMEOUT_S,
            lambda: api.get(f"/api/v2/dags/{dag_id}").status_code == 200,
        )
        _wait(  # compose's scheduler healthcheck, on this run's port
            "scheduler healthy",
            cluster,
            START_TIMEOUT_S,
            lambda: httpx.get(scheduler_health).is_success,
        )

        unpaused = api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert unpaused.status_code == 200, unpaused.text
        triggered = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
        assert triggered.status_code == 200, triggered.text
        run_id = triggered.json()["dag_run_id"]

        def finished() -> str | None:
            state = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            return str(state) if state in {"success", "failed"} else None

        state = _wait(f"{dag_id} run {run_id} finished", cluster, RUN_TIMEOUT_S, finished)
        assert state == "success", f"{dag_id} run {run_id}: {state}"

        # every task went through Celery: sent to this run's queue, received by the worker,
        # its Celery task id stored as SUCCESS in the result backend (compose's
        # db+postgresql one). A task reports its own state before its Celery task returns,
        # so the last result may land a moment after the run is done.
        with psycopg.connect(postgres_url_2, autocommit=True) as meta:
            tis = meta.execute(
                "SELECT task_id, map_index, state, queue, external_executor_id, hostname "
                "FROM task_instance WHERE dag_id = %s AND run_id = %s",
                (dag_id, run_id),
            ).fetchall()

            def celery_results() -> dict[str, str] | None:
                rows = meta.execute("SELECT task_id, status FROM celery_taskmeta").fetchall()
                found = {str(task_id): str(status) for task_id, status in rows}
                return found if all(found.get(ti[4]) == "SUCCESS" for ti in tis) else None

            results = _wait("every Celery result SUCCESS", cluster, 30, celery_results)
        resources = sorted(r.code for r in catalog.resources_of(DEPARTMENT))
        assert sorted((t[0], t[1]) for t in tis) == [
            ("raw_landed", -1),
            *(("sync_resource", i) for i in range(len(resources))),
        ]
        worker_log = cluster.log("worker").read_text(errors="replace")
        for task_id, map_index, ti_state, queue, celery_id, hostname in tis:
            where = f"{task_id}[{map_index}]"
            assert ti_state == "success", where
            assert queue == token, where
            assert hostname, where
            assert results.get(celery_id) == "SUCCESS", where
            assert f"execute_workload[{celery_id}] received" in worker_log, where

        # the warehouse holds exactly what the simulator says the tax system holds
        with open_warehouse(settings.warehouse_url) as warehouse:
            for code in resources:
                resource = catalog.resource(code)
                assert resource.raw_table.startswith(f"{DEPARTMENT}__")
                rows = warehouse.query(
                    f'SELECT _op, count(*) FROM raw."{resource.raw_table}" GROUP BY _op'
                )
                day = manifest["resources"][code]["days"][-1]
                expected = {"upsert": day["inserted"] + day["updated"] - day["unparseable"]}
                if day["deleted"]:
                    expected["delete"] = day["deleted"]
                assert {str(op): int(n) for op, n in rows} == expected, code

        check_compose_healthchecks(cluster, token)
