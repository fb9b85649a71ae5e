"""The hub's own secret keys: signing, MAC and encryption keys it needs to run.

Each is read from ``HUB_SECRET_<NAME>`` (base64url of its bytes, or for signing keys the
forms their module accepts). Only under the demo profile (``HUB_PROFILE=demo``: the demo
and the tests on one machine) may a missing key be generated: once, under
``HUB_HOME/secrets/<name>`` with mode 0600, by whichever process gets there first.
Anywhere else a missing key is one clear error naming the variable, never a fallback: a
deployment that forgot a secret refuses to start rather than run with a key nobody else
knows.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from hub.settings import PLACEHOLDER_SECRETS, Settings, SettingsError


def secret_text(settings: Settings, name: str, generate: Callable[[], str]) -> str:
    """The secret ``name``: ``HUB_SECRET_<NAME>``, else (demo profile only) the file
    under ``HUB_HOME/secrets``, made with ``generate()`` when absent. Raises
    SettingsError naming the variable."""
    variable = f"HUB_SECRET_{name.upper()}"
    value = os.environ.get(variable)
    if value is not None:
        value = value.strip()
        if not value or value.lower() in PLACEHOLDER_SECRETS:
            raise SettingsError(f"{variable}: empty or a placeholder; set it")
        return value
    if not settings.demo:
        raise SettingsError(
            f"{variable} is not set: the hub needs this key outside the demo profile "
            "(generate one with `hub keys generate " + name.lower() + "`)"
        )
    return _file_secret(settings.home / "secrets" / name.lower(), generate)


def secret_bytes(settings: Settings, name: str, size: int = 32) -> bytes:
    """A symmetric key of ``size`` bytes (base64url in the variable or file)."""
    text = secret_text(settings, name, lambda: encode_key(secrets.token_bytes(size)))
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SettingsError(f"HUB_SECRET_{name.upper()}: not base64url") from exc
    if len(raw) < size:
        raise SettingsError(
            f"HUB_SECRET_{name.upper()}: expected at least {size} bytes, got {len(raw)}"
        )
    return raw


def encode_key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _file_secret(path: Path, generate: Callable[[], str]) -> str:
    if path.exists():
        text = path.read_text().strip()
        if text:
            return text
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = generate()
    try:
        # O_EXCL: two processes starting at once must not end up with different keys
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):  # the other process may not have written it yet
            text = path.read_text().strip()
            if text:
                return text
            time.sleep(0.01)
        raise SettingsError(f"{path}: the key file is empty") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return value
