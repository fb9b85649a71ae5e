"""API keys: shown once, stored as a SHA-256 only, checked in constant time; a key of
another form, another secret, a revoked key or a spelling variant is refused alike."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest

from hub.keys import (
    ApiKeyError,
    PrincipalKind,
    api_key_of,
    authenticate,
    create_key,
    parse_key,
    revoke_key,
)
from hub.settings import Settings, reset_settings
from hub.storage.interface import open_ops

AT = datetime(2026, 11, 2, 8, 0)


@pytest.fixture
def store(warehouse_url: str):  # type: ignore[no-untyped-def]
    reset_settings()
    with open_ops(Settings()) as opened:
        yield opened


def test_a_key_is_stored_hashed_and_authenticates_its_principal(store) -> None:  # type: ignore[no-untyped-def]
    issued = create_key(store, PrincipalKind.application, "second_hand_transfer", by="t", now=AT)
    prefix, key_id, secret = issued.key.split("_", 2)
    assert prefix == "hubk" and key_id == issued.key_id and len(secret) >= 43
    ((stored,),) = store.query("SELECT secret_sha256 FROM ops.api_keys WHERE key_id = ?", (key_id,))
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    rows = store.query("SELECT * FROM ops.api_keys")
    assert all(secret not in str(value) for row in rows for value in row)
    principal = authenticate(store, issued.key)
    assert principal == issued.principal
    assert (principal.kind, principal.code) == (PrincipalKind.application, "second_hand_transfer")


def test_variants_of_a_valid_key_are_refused_alike(store) -> None:  # type: ignore[no-untyped-def]
    issued = create_key(store, PrincipalKind.department, "tax", by="t", now=AT)
    _, key_id, secret = issued.key.split("_", 2)
    other = create_key(store, PrincipalKind.application, "app", by="t", now=AT)
    variants = [
        f"hubk_{key_id}_{secret[:-1]}",  # one character short
        f"hubk_{key_id}_{secret}x",
        f"hubk_{key_id.upper()}_{secret}"
        if key_id.upper() != key_id
        else f"hubk_x{key_id}_{secret}",
        f"HUBK_{key_id}_{secret}",
        f"hubk_{other.key_id}_{secret}",  # another key's id with this secret
        f"hubk_{key_id}_{other.key.split('_', 2)[2]}",
        f"hubk_{key_id}_",
        f"hubk__{secret}",
        "hubk",
        "",
        f"hubk_{key_id}' OR '1'='1_{secret}",
    ]
    for variant in variants:
        with pytest.raises(ApiKeyError):
            authenticate(store, variant)
    assert authenticate(store, f"  {issued.key}\n").code == "tax"  # surrounding space only


def test_a_revoked_key_is_refused_and_revoking_twice_says_so(store) -> None:  # type: ignore[no-untyped-def]
    issued = create_key(store, PrincipalKind.application, "app", by="t", now=AT)
    assert revoke_key(store, issued.key_id, now=AT) is True
    assert revoke_key(store, issued.key_id, now=AT) is False
    assert revoke_key(store, "000000000000", now=AT) is False
    with pytest.raises(ApiKeyError, match="unknown or revoked"):
        authenticate(store, issued.key)


def test_the_key_a_request_sends() -> None:
    assert api_key_of("Bearer hubk_a_b", "hubk_c_d") == "hubk_a_b"
    assert api_key_of("bearer hubk_a_b", None) == "hubk_a_b"
    assert api_key_of("Basic dXNlcjpwYXNz", "hubk_c_d") == "hubk_c_d"
    assert api_key_of(None, "") is None and api_key_of("", None) is None
    with pytest.raises(ApiKeyError, match="expected hubk_<key id>_<secret>"):
        parse_key("Bearer hubk_a_b")
    assert parse_key("hubk_abc_d_e") == ("abc", "d_e")  # the secret may hold underscores
