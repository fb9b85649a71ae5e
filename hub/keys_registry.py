"""Every public key the hub has signed with, so that rotating a key never invalidates what
was signed before: evidence documents and audit anchors keep checking out offline.

A key is recorded (``ops.signing_keys``: kid, purpose, algorithm, the public JWK, when it
was first used) the first time a process loads it; the published key set
(``GET /v1/keys``, ``hub evidence keys``) lists the current key first, then every
recorded one. Only public keys are stored.
"""

from __future__ import annotations

import json
from typing import Any

from hub.demand.calendar import utc_now
from hub.settings import Settings
from hub.signing import Verifier, key_set, verifier_of


def record_key(store: Any, key: Verifier, purpose: str) -> None:
    """Record ``key``'s public part (idempotent)."""
    found = store.query("SELECT key_id FROM ops.signing_keys WHERE key_id = ?", (key.key_id,))
    if not found:
        store.execute(
            "INSERT INTO ops.signing_keys (key_id, purpose, algorithm, public_jwk, first_used_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id) DO NOTHING",
            (key.key_id, purpose, key.alg, json.dumps(key.public_jwk()), utc_now()),
        )


def recorded_keys(store: Any) -> list[Verifier]:
    rows = store.query("SELECT public_jwk FROM ops.signing_keys ORDER BY first_used_at, key_id")
    return [verifier_of(json.loads(row[0])) for row in rows]


def known_keys(settings: Settings, *current: Verifier, purpose: str = "evidence") -> dict[str, Any]:
    """The JWKS of ``current`` and every recorded key (recording ``current``)."""
    from hub.storage.interface import open_ops

    with open_ops(settings) as store:
        for key in current:
            record_key(store, key, purpose)
        return key_set(*current, *recorded_keys(store))
