"""Signed evidence documents: standard JWS, tampering, keys and their rotation, the subject
bound with a keyed digest, the offline CLI check."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.evidence import (
    EvidenceError,
    EvidenceKey,
    check_subject,
    load_evidence_key,
    load_subject_key,
    public_key_set,
    sign_evidence,
    subject_mac,
    verify_evidence,
)
from hub.settings import Settings, SettingsError
from hub.signing import Profile, b64url_decode

KEY = EvidenceKey.generate()
SUBJECT_KEY = os.urandom(32)
OWNER = "36020319900102100X"


def claims(**changes: Any) -> dict[str, Any]:
    return {
        "jti": "req-00042",
        "azp": "housing_transfer_window",
        "claim": "owns_property",
        "answer": True,
        "basis": {"current_rights": 1},
        "resource": "property_rights",
        "version": 7,
        "data_as_of": datetime(2026, 11, 24, 2, 0, tzinfo=UTC),
        "gate_run_id": "gate-20261124T020000Z-property_rights",
        "sub_mac": subject_mac(Profile.standard, SUBJECT_KEY, OWNER),
        "note": "景德镇市",
        **changes,
    }


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    head, body, signature = token.split(".")
    header, payload = json.loads(b64url_decode(head)), json.loads(b64url_decode(body))
    return header, payload, b64url_decode(signature)


def resign(token: str, **changes: Any) -> str:
    """The same document with changed claims and the old signature."""
    head, body, signature = token.split(".")
    payload = {**json.loads(b64url_decode(body)), **changes}
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{head}.{encoded}.{signature}"


def test_round_trip_as_a_standard_jws() -> None:
    issued = datetime(2026, 11, 24, 9, 30, 1, tzinfo=UTC)
    token = sign_evidence(claims(), KEY, issued_at=issued)
    header, payload, signature = parts(token)
    assert header == {"alg": "EdDSA", "kid": KEY.key_id, "typ": "hub-evidence+jwt"}
    assert payload["iat"] == int(issued.timestamp()) and payload["iss"] == "exchange-hub"
    assert payload["data_as_of"] == "2026-11-24T02:00:00Z" and len(signature) == 64
    assert OWNER not in token and "subject" not in payload  # the ID never shows
    verified = verify_evidence(token, public_key_set(KEY))
    assert verified.claim == "owns_property" and verified.version == 7
    assert verified.resource == "property_rights" and verified.request_id == "req-00042"
    assert verified.issued_at == issued and verified.evidence["note"] == "景德镇市"
    # any JOSE library checks it with the published key
    decoded = jwt.decode(token, KEY.public_key, algorithms=["EdDSA"])
    assert decoded["answer"] is True and decoded["claim"] == "owns_property"


def test_payload_is_canonical_json() -> None:
    token = sign_evidence(claims(version=date(2026, 11, 1)), KEY)
    body = b64url_decode(token.split(".")[1])
    assert body.startswith(b'{"answer":true,"azp":')  # sorted keys, no spaces
    assert "景德镇市".encode() in body  # UTF-8, not \\u escapes


@pytest.mark.parametrize(
    "changes",
    [{"answer": False}, {"version": 8}, {"sub_mac": "A" * 43}, {"extra": "added"},
     {"iat": 0}],
)  # fmt: skip
def test_tampered_document_fails(changes: dict[str, Any]) -> None:
    forged = resign(sign_evidence(claims(), KEY), **changes)
    with pytest.raises(EvidenceError) as caught:
        verify_evidence(forged, public_key_set(KEY))
    assert caught.value.reason == "bad_signature"


def test_wrong_key_none_algorithm_and_rotation() -> None:
    token = sign_evidence(claims(), KEY)
    other = EvidenceKey.generate()
    with pytest.raises(EvidenceError, match="not in the key set") as caught:
        verify_evidence(token, public_key_set(other))
    assert caught.value.reason == "unknown_key"
    # a forger who claims the hub's key id but signs with their own key
    forged = sign_evidence(claims(answer=False), other)
    _head, body, signature = forged.split(".")
    fake_head = base64.urlsafe_b64encode(
        json.dumps({"alg": "EdDSA", "kid": KEY.key_id, "typ": "hub-evidence+jwt"}).encode()
    ).rstrip(b"=")
    with pytest.raises(EvidenceError) as caught:
        verify_evidence(f"{fake_head.decode()}.{body}.{signature}", public_key_set(KEY, other))
    assert caught.value.reason == "bad_signature"
    # alg "none" and a shared-secret algorithm are refused
    unsigned = jwt.encode(claims(iat=1, data_as_of="x"), key=None, algorithm="none",
                          headers={"kid": KEY.key_id, "typ": "hub-evidence+jwt"})  # fmt: skip
    with pytest.raises(EvidenceError) as caught:
        verify_evidence(unsigned, public_key_set(KEY))
    assert caught.value.reason in {"unsupported_algorithm", "malformed"}
    # after a rotation the set holds the new key and the retired one: both verify
    assert verify_evidence(token, public_key_set(other, KEY)).key_id == KEY.key_id


@pytest.mark.parametrize(
    "document", [[], {"evidence": {}}, "x.y", "a.b.c", "e30.e30.AAAA", {"evidence": 3}]
)
def test_malformed_document(document: Any) -> None:
    with pytest.raises(EvidenceError) as caught:
        verify_evidence(document, public_key_set(KEY))
    assert caught.value.reason in {"malformed", "unknown_key"}


def test_missing_members_are_refused() -> None:
    with pytest.raises(ValueError, match="missing jti"):
        sign_evidence(claims(jti=None), KEY)
    with pytest.raises(ValueError, match="missing sub_mac"):
        sign_evidence(claims(sub_mac=None), KEY)
    with pytest.raises(TypeError, match="not JSON"):
        sign_evidence(claims(answer=object()), KEY)


def test_subject_is_bound_by_a_keyed_digest() -> None:
    verified = verify_evidence(sign_evidence(claims(), KEY), public_key_set(KEY))
    check_subject(verified, OWNER, SUBJECT_KEY, Profile.standard)
    check_subject(verified, OWNER.lower(), SUBJECT_KEY, Profile.standard)  # canonical form
    with pytest.raises(EvidenceError) as caught:
        check_subject(verified, "360203199912310021", SUBJECT_KEY, Profile.standard)
    assert caught.value.reason == "wrong_subject"
    with pytest.raises(EvidenceError):  # without the hub's key nobody can test a guess
        check_subject(verified, OWNER, os.urandom(32), Profile.standard)


def test_stored_key_forms(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # embedded default: generated once, 0600, then the same key every time
    first = load_evidence_key(settings)
    path = settings.home / "secrets" / "evidence_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_evidence_key(settings).key_id == first.key_id
    # from the environment: base64url seed or PEM
    monkeypatch.setenv("HUB_SECRET_EVIDENCE_KEY", KEY.to_secret())
    assert load_evidence_key(settings).key_id == KEY.key_id
    from cryptography.hazmat.primitives import serialization

    pem = KEY.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    monkeypatch.setenv("HUB_SECRET_EVIDENCE_KEY", pem)
    assert load_evidence_key(settings).key_id == KEY.key_id
    monkeypatch.setenv("HUB_SECRET_EVIDENCE_KEY", "c2hvcnQ")
    with pytest.raises(SettingsError, match="32-byte"):
        load_evidence_key(settings)
    monkeypatch.setenv("HUB_SECRET_EVIDENCE_KEY", "changeme")
    with pytest.raises(SettingsError, match="placeholder"):
        load_evidence_key(settings)


def test_postgres_warehouse_needs_provided_keys(deployment_profile: Path) -> None:
    settings = Settings(warehouse_url="postgresql://postgres@127.0.0.1:5432/none")
    with pytest.raises(SettingsError, match="HUB_SECRET_EVIDENCE_KEY is not set"):
        load_evidence_key(settings)
    with pytest.raises(SettingsError, match="HUB_SECRET_SUBJECT_KEY is not set"):
        load_subject_key(settings)
    assert not (settings.home / "secrets").exists()


def test_cli_offline_verification(settings: Settings, tmp_path: Path) -> None:
    keys = CliRunner().invoke(app, ["evidence", "keys"])
    assert keys.exit_code == 0, keys.output
    key_file = tmp_path / "keys.json"
    key_file.write_text(keys.output)
    hub_key = load_evidence_key(settings)
    own_mac = subject_mac(Profile.standard, load_subject_key(settings), OWNER)
    document = tmp_path / "evidence.jws"
    document.write_text(sign_evidence(claims(sub_mac=own_mac), hub_key))

    ok = CliRunner().invoke(app, ["evidence", "verify", str(document), "--keys", str(key_file)])
    assert ok.exit_code == 0, ok.output
    assert "evidence ok" in ok.output and "property_rights v7" in ok.output
    about = CliRunner().invoke(app, ["evidence", "verify", str(document), "--subject", OWNER])
    assert about.exit_code == 0 and "about the subject given" in about.output, about.output
    other = CliRunner().invoke(
        app, ["evidence", "verify", str(document), "--subject", "360203199912310021"]
    )
    assert other.exit_code == 1 and "wrong_subject" in other.output
    malformed = CliRunner().invoke(
        app, ["evidence", "verify", str(document), "--subject", "36020319900102100"]
    )
    assert malformed.exit_code == 1 and "--subject" in malformed.output

    document.write_text(resign(document.read_text(), answer=False))
    bad = CliRunner().invoke(app, ["evidence", "verify", str(document), "--keys", str(key_file)])
    assert bad.exit_code == 1
    assert "bad_signature" in bad.output

    key_file.write_text(json.dumps(public_key_set(EvidenceKey.generate())))
    unknown = CliRunner().invoke(
        app, ["evidence", "verify", str(document), "--keys", str(key_file)]
    )
    assert unknown.exit_code == 1 and "unknown_key" in unknown.output
    missing = CliRunner().invoke(app, ["evidence", "verify", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and "cannot be read" in missing.output
