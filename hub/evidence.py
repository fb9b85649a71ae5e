"""Signed evidence documents: standard JWS, checkable offline, bound to their subject.

A verification call ("does this person own property in the city?") answers with an
evidence document: a compact JWS (RFC 7515) that anyone can check later with the hub's
published key set (``GET /v1/keys``, ``hub evidence keys``) and any JOSE library::

    header  {"alg": "EdDSA", "kid": "<RFC 7638 thumbprint>", "typ": "hub-evidence+jwt"}
    payload {"iss": "exchange-hub", "jti": <request id>, "iat": <unix s>,
             "azp": <application>, "claim": ..., "answer": true|false, "basis": {...},
             "resource": ..., "version": N, "data_as_of": ..., "gate_run_id": ...,
             "stale": ..., "disputed": ..., "sub_mac": "<keyed digest of the subject>"}

(``alg`` is ``SM2SM3`` in the ``gm`` profile, :mod:`hub.signing`.) The payload is
canonical JSON: sorted keys, no whitespace, UTF-8.

**Subjects.** The document never spells out the citizen ID or credit code it is about,
nor a plain hash of it (an 18-digit ID is found from a bare SHA-256 by hashing the
population in a fraction of a second). It carries ``sub_mac`` = HMAC-SHA-256 (HMAC-SM3)
of the canonical identifier (:mod:`hub.identifiers`) under the hub's subject key
``HUB_SECRET_SUBJECT_KEY``: without that key nothing about the person can be learnt, and
with it ``hub evidence verify FILE --subject ID`` (or ``POST /v1/evidence/check``) tells
whether a document is about that person, so a document about one applicant cannot be
replayed for another.

**Keys rotate** without invalidating older documents: the current signing key is
``HUB_SECRET_EVIDENCE_KEY``; every public key the hub has signed with is recorded in the
ops store (``ops.signing_keys``) and stays in the published key set.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from hub.identifiers import canonical
from hub.keyring import secret_bytes, secret_text
from hub.settings import Settings, SettingsError
from hub.signing import (
    Ed25519Signer,
    Profile,
    SignatureError,
    Signer,
    Verifier,
    canonical_json,
    generate_signer,
    jws_sign,
    jws_verify,
    key_set,
    keyed_digest,
    signer_from_secret,
    verifiers_by_id,
)

ISSUER = "exchange-hub"
TYP = "hub-evidence+jwt"
SECRET_NAME = "evidence_key"  # noqa: S105 - the name of the secret, not its value
# Members every evidence document names (DESIGN.md: claim, resource, version, time, request).
REQUIRED = ("claim", "resource", "version", "iat", "jti", "sub_mac")

# kept for callers of the first version
EvidenceKey = Ed25519Signer


class EvidenceError(ValueError):
    """An evidence document does not verify; ``reason`` says which check failed:
    ``malformed``, ``unsupported_algorithm``, ``unknown_key``, ``bad_signature`` or
    ``wrong_subject``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def profile_of(settings: Settings) -> Profile:
    return Profile(settings.crypto_profile)


def load_evidence_signer(settings: Settings) -> Signer:
    """The current evidence signing key (``HUB_SECRET_EVIDENCE_KEY``; generated under
    HUB_HOME only under the demo profile). Raises SettingsError."""
    profile = profile_of(settings)
    text = secret_text(settings, SECRET_NAME, lambda: generate_signer(profile).to_secret())
    try:
        return signer_from_secret(profile, text, "HUB_SECRET_EVIDENCE_KEY")
    except SignatureError as exc:
        raise SettingsError(str(exc)) from exc


def load_evidence_key(settings: Settings, *, create: bool | None = None) -> Signer:
    """The evidence key (the first version's name for :func:`load_evidence_signer`)."""
    return load_evidence_signer(settings)


def load_subject_key(settings: Settings) -> bytes:
    """The key of evidence documents' subject digest (``HUB_SECRET_SUBJECT_KEY``)."""
    return secret_bytes(settings, "subject_key")


def subject_mac(profile: Profile, key: bytes, subject: str) -> str:
    """The keyed digest binding a document to its subject (canonical identifier)."""
    return keyed_digest(profile, key, canonical(subject).encode("utf-8"))


def _json_native(value: Any) -> Any:
    """Dates become ISO strings, tuples lists; anything else JSON cannot hold is refused."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: evidence times must be timezone-aware")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_native(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_native(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"evidence value {value!r} ({type(value).__name__}) is not JSON")


def sign_evidence(
    claims: Mapping[str, Any], signer: Signer, *, issued_at: datetime | None = None
) -> str:
    """A compact JWS over ``claims`` (claim, resource, version, jti, sub_mac, ...), with
    ``iss`` and ``iat`` added. Raises ValueError for a missing member, TypeError for a
    value that is not JSON (floats included: their text differs between languages)."""
    payload = dict(claims)
    payload.setdefault("iss", ISSUER)
    moment = issued_at or datetime.now(UTC)
    payload["iat"] = int(moment.timestamp())
    missing = [name for name in REQUIRED if payload.get(name) is None]
    if missing:
        raise ValueError(f"evidence payload: missing {', '.join(missing)}")
    return jws_sign(_json_native(payload), signer, TYP)


@dataclass(frozen=True)
class VerifiedEvidence:
    """A document whose signature checked out, with its main members at hand."""

    evidence: dict[str, Any]
    key_id: str
    claim: Any
    resource: str
    version: Any
    issued_at: datetime
    request_id: str


def verify_evidence(
    document: str | Mapping[str, Any], public_keys: Mapping[str, Any] | Iterable[Any]
) -> VerifiedEvidence:
    """Check a document against a key set (the JWKS of ``GET /v1/keys``, or keys). The
    document is the compact JWS, or a JSON object holding it as ``evidence``. Raises
    EvidenceError."""
    if isinstance(document, Mapping):
        document = document.get("evidence")  # type: ignore[assignment]
    if not isinstance(document, str):
        raise EvidenceError("malformed", "evidence document: expected a compact JWS string")
    try:
        keys = verifiers_by_id(public_keys)
        payload, key = jws_verify(document.strip(), keys, TYP)
    except SignatureError as exc:
        raise EvidenceError(exc.reason, f"evidence document: {exc}") from exc
    missing = [name for name in REQUIRED if payload.get(name) is None]
    if missing:
        raise EvidenceError("malformed", f"evidence: missing {', '.join(missing)}")
    if not isinstance(payload["iat"], int):
        raise EvidenceError("malformed", "evidence: iat is not a number of seconds")
    return VerifiedEvidence(
        evidence=payload,
        key_id=key.key_id,
        claim=payload["claim"],
        resource=str(payload["resource"]),
        version=payload["version"],
        issued_at=datetime.fromtimestamp(payload["iat"], UTC),
        request_id=str(payload["jti"]),
    )


def check_subject(verified: VerifiedEvidence, subject: str, key: bytes, profile: Profile) -> None:
    """Raise EvidenceError(``wrong_subject``) unless the document is about ``subject``."""
    expected = subject_mac(profile, key, subject)
    if not hmac.compare_digest(str(verified.evidence.get("sub_mac", "")), expected):
        raise EvidenceError("wrong_subject", "evidence document: it is not about the subject given")


def public_key_set(*keys: Verifier) -> dict[str, Any]:
    """A JWKS for ``GET /v1/keys``: the current key first, then retired ones whose
    documents must stay checkable."""
    return key_set(*keys)


__all__ = [
    "ISSUER",
    "EvidenceError",
    "EvidenceKey",
    "VerifiedEvidence",
    "canonical_json",
    "check_subject",
    "load_evidence_key",
    "load_evidence_signer",
    "load_subject_key",
    "public_key_set",
    "sign_evidence",
    "subject_mac",
    "verify_evidence",
]
