"""The stock ``delta-sharing`` client's own environment, made with uv and kept between runs.

The client (1.4.2) pins pyarrow <= 23 and pandas < 3, which the hub's lock does not allow,
so it cannot live in the hub's ``.venv``. :func:`ensure_client` makes a virtual
environment holding exactly that version under ``HUB_TEST_CACHE`` (default
``~/.cache/exchange-hub``), outside the checkout, keyed by the pinned version, once; the
tests and ``bench/sharing.py`` run the client with its python. No pytest in here.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CLIENT_VERSION = "1.4.2"
CACHE = Path(os.environ.get("HUB_TEST_CACHE", Path.home() / ".cache" / "exchange-hub"))


class ClientUnavailableError(RuntimeError):
    """uv is missing or the client could not be installed (PyPI unreachable)."""


def ensure_client(version: str = CLIENT_VERSION) -> Path:
    """The python of an environment with ``delta-sharing==version``; made if missing.
    Raises ClientUnavailableError."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        raise ClientUnavailableError("uv is not installed (it makes the client's environment)")
    target = CACHE / f"delta-sharing-{version}"
    python = target / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".delta-sharing-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once make it once
        if client_ready(python, version):
            return python
        # built beside the target and renamed: a half-made environment is never used
        building = Path(tempfile.mkdtemp(prefix=f".delta-sharing-{version}.", dir=CACHE))
        try:
            _run([uv, "venv", "--quiet", "--python", sys.executable, str(building)])
            _run([uv, "pip", "install", "--quiet", "--python", str(building / "bin" / "python"),
                  f"delta-sharing=={version}"])  # fmt: skip
        except ClientUnavailableError:
            shutil.rmtree(building, ignore_errors=True)
            raise
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
        _retarget(target, building)
    if not client_ready(python, version):
        raise ClientUnavailableError(f"{python} cannot import delta_sharing {version}")
    return python


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ClientUnavailableError(f"{' '.join(command[:3])} failed: {done.stderr[-1000:]}")


def _retarget(target: Path, built_at: Path) -> None:
    """Scripts and config of a venv name the folder it was made in: point them here."""
    for path in [*(target / "bin").iterdir(), target / "pyvenv.cfg"]:
        if path.is_file() and not path.is_symlink():
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            if str(built_at) in text:
                path.write_text(text.replace(str(built_at), str(target)))


def client_ready(python: Path, version: str = CLIENT_VERSION) -> bool:
    if not python.exists():
        return False
    check = subprocess.run(
        [str(python), "-c", "import delta_sharing; print(delta_sharing.__version__)"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return check.returncode == 0 and check.stdout.strip() == version
