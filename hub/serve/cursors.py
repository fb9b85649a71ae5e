"""Opaque page cursors: the key of the last row, encrypted and authenticated.

A ``next`` cursor must let a caller continue a listing and nothing else. It carries the
primary-key values of the last row returned, which may include a field the caller was
not granted (a citizen ID in a key), so it is sealed with AES-256-GCM under the hub's
``HUB_SECRET_CURSOR_KEY``: the caller learns nothing from it, cannot make one by hand,
and cannot use one outside the listing it came from, because the *binding* (grant,
resource, filters, applicant) is the GCM associated data: a cursor replayed under another
grant or query fails authentication. It also expires (``HUB_API_CURSOR_TTL_S``).

Wire form: ``base64url(nonce(12) || ciphertext || tag(16))`` of the JSON
``{"k": [key values], "x": expiry (unix seconds)}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAX_CURSOR_CHARS = 2_000


class CursorError(ValueError):
    """A cursor this API did not issue for this query, or one that expired."""


def binding(*parts: Any) -> bytes:
    """The digest a cursor is bound to: the grant, resource and query it pages."""
    return hashlib.sha256(
        json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"), default=str).encode()
    ).digest()


class CursorCodec:
    def __init__(self, key: bytes, ttl_s: int) -> None:
        self._aead = AESGCM(key[:32])
        self.ttl_s = ttl_s

    def seal(self, values: Sequence[Any], bound_to: bytes, *, now: float | None = None) -> str:
        expiry = int((now if now is not None else time.time()) + self.ttl_s)
        plain = json.dumps({"k": list(values), "x": expiry}, separators=(",", ":")).encode()
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, plain, bound_to)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(
        self, cursor: str, bound_to: bytes, width: int, *, now: float | None = None
    ) -> list[Any]:
        """The key values of ``cursor``; raises CursorError when it was not issued for
        this binding, was altered, or expired."""
        if not cursor or len(cursor) > MAX_CURSOR_CHARS:
            raise CursorError("not a cursor this API returned for this query")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as exc:
            raise CursorError("not a cursor this API returned for this query") from exc
        if len(raw) < 12 + 16:
            raise CursorError("not a cursor this API returned for this query")
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], bound_to)
        except InvalidTag as exc:
            raise CursorError("not a cursor this API returned for this query") from exc
        data = json.loads(plain)
        if int(data["x"]) < (now if now is not None else time.time()):
            raise CursorError("the cursor expired: start the listing again")
        values = data["k"]
        if not isinstance(values, list) or len(values) != width:
            raise CursorError("not a cursor this API returned for this query")
        return values
