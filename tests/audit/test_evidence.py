"""Signed evidence documents: round trip, tampering, keys, offline CLI check."""

from __future__ import annotations

import base64
import copy
import json
import os
import stat
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from hub.cli import app
from hub.evidence import (
    EvidenceError,
    EvidenceKey,
    canonical_json,
    load_evidence_key,
    public_key_set,
    sign_evidence,
    subject_digest,
    verify_evidence,
)
from hub.settings import Settings, SettingsError

KEY = EvidenceKey.generate()


def payload(**changes: Any) -> dict[str, Any]:
    return {
        "claim": "owns_property_in_city",
        "subject": subject_digest("36020219800101123x"),
        "answer": True,
        "resource": "property_rights",
        "version": 7,
        "data_as_of": datetime(2026, 11, 24, 2, 0, tzinfo=UTC),
        "gate_run": "gate-20261124T020000Z-property_rights",
        "request_id": "req-00042",
        "application": "one-stop-housing",
        "note": "景德镇市",
        **changes,
    }


def test_round_trip() -> None:
    issued = datetime(2026, 11, 24, 9, 30, 1, 250000, tzinfo=UTC)
    document = sign_evidence(payload(), KEY, issued_at=issued)
    assert set(document) == {"evidence", "key_id", "algorithm", "signature"}
    assert document["algorithm"] == "Ed25519" and document["key_id"] == KEY.key_id
    assert document["evidence"]["issued_at"] == "2026-11-24T09:30:01.250000Z"
    assert document["evidence"]["data_as_of"] == "2026-11-24T02:00:00Z"
    assert len(base64.b64decode(document["signature"])) == 64
    # through a file and back, as an application keeps it
    kept = json.loads(json.dumps(document, indent=2, ensure_ascii=True))
    verified = verify_evidence(kept, public_key_set(KEY))
    assert verified.claim == "owns_property_in_city" and verified.version == 7
    assert verified.resource == "property_rights" and verified.request_id == "req-00042"
    assert verified.issued_at == issued and verified.evidence["note"] == "景德镇市"
    assert verified.evidence["subject"] == subject_digest("36020219800101123X")


def test_signed_bytes_are_canonical_json() -> None:
    document = sign_evidence(payload(version=date(2026, 11, 1)), KEY)
    message = canonical_json({k: v for k, v in document.items() if k != "signature"})
    assert message.startswith(b'{"algorithm":"Ed25519","evidence":{"answer":true,')
    assert "景德镇市".encode() in message  # UTF-8, not \\u escapes
    KEY.public_key.verify(base64.b64decode(document["signature"]), message)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("evidence", "answer"), False),
        (("evidence", "version"), 8),
        (("evidence", "issued_at"), "2020-01-01T00:00:00Z"),
        (("evidence", "extra"), "added"),
        (("algorithm",), "Ed25519 "),
    ],
)
def test_tampered_document_fails(path: tuple[str, ...], value: Any) -> None:
    document = copy.deepcopy(sign_evidence(payload(), KEY))
    target = document
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    with pytest.raises(EvidenceError) as caught:
        verify_evidence(document, public_key_set(KEY))
    assert caught.value.reason in {"bad_signature", "unsupported_algorithm"}


def test_wrong_or_unknown_key_fails() -> None:
    document = sign_evidence(payload(), KEY)
    other = EvidenceKey.generate()
    with pytest.raises(EvidenceError, match="not in the key set") as caught:
        verify_evidence(document, public_key_set(other))
    assert caught.value.reason == "unknown_key"
    # a forger who claims the hub's key id but signs with their own key
    forged = sign_evidence(payload(answer=False), other)
    forged["key_id"] = KEY.key_id
    with pytest.raises(EvidenceError) as caught:
        verify_evidence(forged, public_key_set(KEY, other))
    assert caught.value.reason == "bad_signature"
    # a key set holding the current and a retired key accepts both
    assert verify_evidence(document, public_key_set(other, KEY)).key_id == KEY.key_id


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"evidence": {}},
        {"evidence": "x", "key_id": "k", "algorithm": "Ed25519", "signature": "AA=="},
        {"evidence": {}, "key_id": KEY.key_id, "algorithm": "Ed25519", "signature": "%%%"},
    ],
)
def test_malformed_document(document: Any) -> None:
    with pytest.raises(EvidenceError) as caught:
        verify_evidence(document, public_key_set(KEY))
    assert caught.value.reason == "malformed"


def test_missing_members_are_refused() -> None:
    with pytest.raises(ValueError, match="missing request_id"):
        sign_evidence(payload(request_id=None), KEY)
    with pytest.raises(TypeError, match="not JSON"):
        sign_evidence(payload(answer=object()), KEY)


def test_key_set_is_a_jwks() -> None:
    jwks = json.loads(json.dumps(public_key_set(KEY)))
    [jwk] = jwks["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["kid"]) == ("OKP", "Ed25519", KEY.key_id)
    raw = KEY.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.urlsafe_b64decode(jwk["x"] + "=") == raw
    jwk["kid"] = "someone-else"
    with pytest.raises(EvidenceError, match="thumbprint"):
        verify_evidence(sign_evidence(payload(), KEY), jwks)


def test_stored_key_forms(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # embedded default: generated once, 0600, then the same key every time
    first = load_evidence_key(settings)
    path = settings.systems_dir / "secrets" / "evidence_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_evidence_key(settings).key_id == first.key_id
    # from the environment: base64url seed or PEM
    monkeypatch.setenv("HUB_SECRET_EVIDENCE_KEY", KEY.to_secret())
    assert load_evidence_key(settings).key_id == KEY.key_id
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


def test_postgres_warehouse_needs_a_provided_key(hub_home: Path) -> None:
    settings = Settings(warehouse_url="postgresql://postgres@127.0.0.1:5432/none")
    with pytest.raises(SettingsError, match="HUB_SECRET_EVIDENCE_KEY is not set"):
        load_evidence_key(settings)
    assert not (settings.systems_dir / "secrets" / "evidence_key").exists()


def test_cli_offline_verification(settings: Settings, tmp_path: Path) -> None:
    keys = CliRunner().invoke(app, ["evidence", "keys"])
    assert keys.exit_code == 0, keys.output
    key_file = tmp_path / "keys.json"
    key_file.write_text(keys.output)
    hub_key = load_evidence_key(settings)
    document = tmp_path / "evidence.json"
    document.write_text(json.dumps(sign_evidence(payload(), hub_key), ensure_ascii=False))

    ok = CliRunner().invoke(app, ["evidence", "verify", str(document), "--keys", str(key_file)])
    assert ok.exit_code == 0, ok.output
    assert "evidence ok" in ok.output and "property_rights v7" in ok.output

    changed = json.loads(document.read_text())
    changed["evidence"]["answer"] = False
    document.write_text(json.dumps(changed))
    bad = CliRunner().invoke(app, ["evidence", "verify", str(document), "--keys", str(key_file)])
    assert bad.exit_code == 1
    assert "bad_signature" in bad.output

    key_file.write_text(json.dumps(public_key_set(EvidenceKey.generate())))
    unknown = CliRunner().invoke(
        app, ["evidence", "verify", str(document), "--keys", str(key_file)]
    )
    assert unknown.exit_code == 1 and "unknown_key" in unknown.output
    missing = CliRunner().invoke(app, ["evidence", "verify", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and "no such file" in missing.output
