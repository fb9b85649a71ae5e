"""Property-based requests from the OpenAPI spec (schemathesis) against `hub serve`
running as a real server: whatever the input, no 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.serve.conftest import SELLER, Published
from tests.serve.identity import CURRENT


@pytest.fixture
def server(published: Published, hub_home: Path) -> str:
    port = free_port()
    hub_home.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "hub"), "serve", "--port", str(port)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=open(hub_home / "serve.log", "w"),  # noqa: SIM115 - closed with the process
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/openapi.json", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError((hub_home / "serve.log").read_text())
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_no_input_makes_the_api_fail_with_a_server_error(
    server: str, published: Published, hub_home: Path
) -> None:
    expiry = int(time.time()) + 600
    assertion = CURRENT["idp"].assertion(SELLER, "housing_transfer_window", exp=expiry)
    result = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{server}/openapi.json",
            "--checks", "not_a_server_error",
            "--max-examples", "25",
            "--generation-deterministic",
            "--header", f"Authorization: Bearer {published.keys['app']}",
            "--header", "X-End-User-Id: fuzz",
            "--header", "X-Purpose: fuzz",
            "--header", f"X-Applicant-Assertion: {assertion}",
            "--request-timeout", "10",
        ],
        capture_output=True,
        text=True,
        cwd=hub_home,  # its working files stay out of the checkout
        timeout=600,
        check=False,
    )  # fmt: skip
    (hub_home / "schemathesis.out").write_text(result.stdout)
    assert "API Operations" in result.stdout or "operations" in result.stdout.lower()
    assert result.returncode == 0, (
        result.stdout[-4000:] + result.stderr[-2000:] + (hub_home / "serve.log").read_text()[-3000:]
    )
