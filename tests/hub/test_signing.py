"""The two cryptographic profiles: standard (Ed25519, SHA-256) and gm (SM2, SM3 for a
GB/T 39786 deployment), each tested the same way: known vectors, a second implementation
(the `openssl` command), evidence documents and the audit chain end to end."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.audit import FORMAT_V2, AuditEntry, AuditLog, entry_format, entry_hash, verify_chain
from hub.audit.entries import FORMAT_V2_SM3, GENESIS_HASH
from hub.evidence import (
    EvidenceError,
    check_subject,
    public_key_set,
    sign_evidence,
    subject_mac,
    verify_evidence,
)
from hub.signing import (
    Ed25519Signer,
    Profile,
    SignatureError,
    digest,
    generate_signer,
    jws_sign,
    jws_verify,
    signer_from_secret,
    verifier_of,
    verifiers_by_id,
)
from hub.sm2 import Sm2Signer, Sm2Verifier

# GM/T 0003.5-2012 A.2 (= GB/T 32918.5-2017 Annex A): "message digest", default user ID
VECTOR_D = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
VECTOR_POINT = bytes.fromhex(
    "04" "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)  # fmt: skip
VECTOR_SIGNATURE = bytes.fromhex(
    "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
    "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
)


def test_sm3_is_the_standard_hash() -> None:
    assert digest(Profile.gm, b"abc") == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    assert digest(Profile.standard, b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_sm2_signs_and_verifies_the_standard_vector() -> None:
    key = Sm2Signer(VECTOR_D)
    assert key.point == VECTOR_POINT  # the public key derived from d
    assert key.verify(VECTOR_SIGNATURE, b"message digest")
    assert not key.verify(VECTOR_SIGNATURE, b"message digesT")
    mine = key.sign(b"message digest")
    assert len(mine) == 64 and mine != VECTOR_SIGNATURE  # a fresh random k each time
    assert Sm2Verifier(VECTOR_POINT).verify(mine, b"message digest")
    for bad in (b"\0" * 64, b"\xff" * 64, mine[:63], mine[:32] + b"\0" * 32):
        assert not key.verify(bad, b"message digest")


def test_sm2_keys_are_checked() -> None:
    for scalar in (b"\0" * 32, b"\xff" * 32, b"\x01" * 31):
        with pytest.raises(SignatureError):
            Sm2Signer(scalar)
    off_curve = VECTOR_POINT[:-1] + bytes([VECTOR_POINT[-1] ^ 1])
    with pytest.raises(SignatureError, match="SM2"):
        Sm2Verifier(off_curve)
    key = Sm2Signer.generate()
    assert Sm2Signer.from_secret(key.to_secret()).point == key.point
    jwk = key.public_jwk()
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "SM2", "SM2SM3")
    assert verifier_of(jwk).key_id == key.key_id
    with pytest.raises(SignatureError, match="thumbprint"):
        verifier_of({**jwk, "kid": "someone-else"})


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
def test_sm2_agrees_with_the_openssl_command(tmp_path: Path) -> None:
    """A second implementation, both ways: OpenSSL's command verifies ours and we verify its."""
    key = Sm2Signer.generate()
    message = tmp_path / "message"
    message.write_bytes("景德镇市不动产登记中心 evidence".encode())
    der_key = (
        bytes.fromhex("30310201010420") + key._scalar + bytes.fromhex("a00a06082a811ccf5501822d")
    )
    (tmp_path / "key.der").write_bytes(der_key)
    subprocess.run(
        ["openssl", "pkey", "-inform", "DER", "-in", str(tmp_path / "key.der"),
         "-out", str(tmp_path / "key.pem")], check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "pkey", "-in", str(tmp_path / "key.pem"), "-pubout",
         "-out", str(tmp_path / "pub.pem")], check=True, capture_output=True,
    )  # fmt: skip

    def der_signature(raw: bytes) -> bytes:
        from hub.sm2 import _der_int

        body = _der_int(raw[:32]) + _der_int(raw[32:])
        return b"\x30" + bytes([len(body)]) + body

    (tmp_path / "ours.sig").write_bytes(der_signature(key.sign(message.read_bytes())))
    checked = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
         "-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
         "-in", str(message), "-sigfile", str(tmp_path / "ours.sig")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "Success" in checked.stdout, checked.stdout
    theirs = subprocess.run(
        ["openssl", "pkeyutl", "-sign", "-inkey", str(tmp_path / "key.pem"), "-rawin",
         "-digest", "sm3", "-pkeyopt", "distid:1234567812345678", "-in", str(message)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    r_len = theirs[3]
    r = theirs[4 : 4 + r_len][-32:].rjust(32, b"\0")
    s = theirs[6 + r_len :][-32:].rjust(32, b"\0")
    assert key.verify(r + s, message.read_bytes())


@pytest.mark.parametrize("profile", [Profile.standard, Profile.gm])
def test_jws_in_each_profile(profile: Profile) -> None:
    key = generate_signer(profile)
    token = jws_sign({"claim": "x", "n": 1}, key, "test+jwt")
    payload, used = jws_verify(token, verifiers_by_id([key]), "test+jwt")
    assert payload == {"claim": "x", "n": 1} and used.key_id == key.key_id
    assert signer_from_secret(profile, key.to_secret(), "k").key_id == key.key_id
    other = generate_signer(Profile.gm if profile is Profile.standard else Profile.standard)
    head, body, signature = token.split(".")
    with pytest.raises(SignatureError) as caught:
        jws_verify(f"{head}.{body}.{signature[::-1]}", verifiers_by_id([key, other]), "test+jwt")
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize("profile", [Profile.standard, Profile.gm])
def test_evidence_in_each_profile(profile: Profile) -> None:
    key = generate_signer(profile)
    subject_key = b"k" * 32
    token = sign_evidence(
        {"jti": "r1", "claim": "owns_property", "answer": True, "resource": "property_rights",
         "version": 3, "sub_mac": subject_mac(profile, subject_key, "36020319900102100X")},
        key,
    )  # fmt: skip
    verified = verify_evidence(token, public_key_set(key))
    assert verified.key_id == key.key_id
    check_subject(verified, "36020319900102100x", subject_key, profile)
    with pytest.raises(EvidenceError):
        check_subject(verified, "360203199912310021", subject_key, profile)
    # a key set holding keys of both profiles (a hub that moved to gm) checks both
    old = Ed25519Signer.generate()
    older = sign_evidence(
        {"jti": "r0", "claim": "c", "resource": "r", "version": 1, "sub_mac": "m"}, old
    )
    both = public_key_set(key, old)
    assert verify_evidence(older, both).key_id == old.key_id


@pytest.mark.parametrize("profile", [Profile.standard, Profile.gm])
def test_audit_chain_in_each_profile(profile: Profile, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    key = generate_signer(profile)
    fmt = entry_format(profile)
    assert fmt == (FORMAT_V2_SM3 if profile is Profile.gm else FORMAT_V2)
    with AuditLog(url, key, anchor_every_s=0, entry_format=fmt) as log:
        receipts = [
            log.append_sync(AuditEntry(request_id=f"r{i}", at=datetime.now(UTC), status=200))
            for i in range(5)
        ]
    first = AuditEntry(request_id="r0", at=datetime.now(UTC))
    assert len(entry_hash(1, first, GENESIS_HASH, fmt)) == 64
    report = verify_chain(url, public_key_set(key))
    assert report.ok and report.entries == 5 and report.anchors >= 1, report
    assert report.head_hash == receipts[-1].entry_hash
    assert not verify_chain(url, public_key_set(generate_signer(profile))).ok
