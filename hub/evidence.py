"""Signed evidence documents: Ed25519 over canonical JSON, checkable offline.

A verification call ("does this person own property in the city?") answers with an
evidence document that an application can keep and anyone can check later with the hub's
published key set (``GET /v1/keys``, ``hub evidence keys``) and nothing else::

    {
      "evidence": {"claim": ..., "subject": ..., "answer": ..., "resource": ...,
                   "version": ..., "data_as_of": ..., "gate_run": ..., "issued_at": ...,
                   "request_id": ..., ...},
      "key_id": "<RFC 7638 thumbprint of the public key>",
      "algorithm": "Ed25519",
      "signature": "<standard base64 of the 64-byte Ed25519 signature>"
    }

**What is signed.** The document without its ``signature`` member, i.e.
``{"algorithm", "evidence", "key_id"}``, encoded as *canonical JSON*: keys sorted, no
whitespace (``separators=(",", ":")``), non-ASCII characters written as themselves
(``ensure_ascii=False``), NaN/Infinity refused, then UTF-8. Python's
``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False).encode()`` produces it. Signing ``key_id`` and ``algorithm`` too means
neither can be swapped without breaking the signature. Values are strings, integers,
booleans, null, lists and objects; dates and datetimes are turned into ISO 8601 strings
before signing (the document returned is exactly what was signed). Avoid floats: their
shortest decimal form is the same in Python and JavaScript, but not in every language.

**Keys.** The private key is the 32-byte Ed25519 seed, stored as one line of base64url
(a PKCS#8 PEM is accepted too) in the hub's secrets: ``HUB_SECRET_EVIDENCE_KEY`` or
``HUB_HOME/systems/secrets/evidence_key``. On the embedded default (DuckDB warehouse) a
missing key is generated there with mode 0600; on PostgreSQL it must be provided. The key
id is the RFC 7638 JWK thumbprint: base64url(sha256('{"crv":"Ed25519","kty":"OKP","x":"…"}')),
so anyone holding the public key can recompute it.

**Subjects.** :func:`subject_digest` gives ``sha256:<hex>`` of the subject's identifier,
so a stored document does not spell out a citizen ID while its holder can still match it.
An 18-digit ID has few enough plausible values to be found by brute force: the digest
keeps the ID out of casual view, it is not anonymisation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from hub.settings import Settings, SettingsError

ALGORITHM = "Ed25519"
SECRET_NAME = "evidence_key"  # noqa: S105 - the name of the secret, not its value
# Members every evidence document names (DESIGN.md: claim, resource, version, time, request).
REQUIRED = ("claim", "resource", "version", "issued_at", "request_id")


class EvidenceError(ValueError):
    """An evidence document does not verify; ``reason`` says which check failed.

    reason is one of ``malformed``, ``unsupported_algorithm``, ``unknown_key``,
    ``bad_signature``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def canonical_json(value: Any) -> bytes:
    """The exact bytes that are signed: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: evidence times must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_native(value: Any) -> Any:
    """Dates become ISO strings, tuples lists; anything else JSON cannot hold is refused."""
    if isinstance(value, datetime):
        return _utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_native(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_native(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"evidence value {value!r} ({type(value).__name__}) is not JSON")


def subject_digest(identifier: str) -> str:
    """``sha256:<hex>`` of a subject's identifier (e.g. a citizen ID), for ``subject``.

    The identifier is stripped and upper-cased first (a citizen ID's check character ``x``
    and ``X`` are the same ID), then UTF-8 encoded.
    """
    return "sha256:" + hashlib.sha256(identifier.strip().upper().encode("utf-8")).hexdigest()


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key."""
    x = _b64url(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    members = f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'
    return _b64url(hashlib.sha256(members.encode("ascii")).digest())


def jwk_of(public_key: Ed25519PublicKey) -> dict[str, str]:
    """One public key as a JWK (RFC 8037): kty OKP, crv Ed25519, x, plus kid/alg/use."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(raw),
        "kid": key_id_of(public_key),
        "alg": "EdDSA",
        "use": "sig",
    }


@dataclass(frozen=True)
class EvidenceKey:
    """The hub's signing key. Load it once per process with :func:`load_evidence_key`."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> EvidenceKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_secret(cls, secret: str) -> EvidenceKey:
        """Parse the stored form: base64url (or base64) of the 32-byte seed, or PKCS#8 PEM."""
        text = secret.strip()
        if text.startswith("-----BEGIN"):
            loaded = serialization.load_pem_private_key(text.encode("ascii"), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise SettingsError("HUB_SECRET_EVIDENCE_KEY: the PEM key is not Ed25519")
            return cls(loaded)
        try:
            seed = _b64url_decode(text.replace("+", "-").replace("/", "_").rstrip("="))
        except (binascii.Error, ValueError) as exc:
            raise SettingsError("HUB_SECRET_EVIDENCE_KEY: not base64 or PEM") from exc
        if len(seed) != 32:
            raise SettingsError(
                f"HUB_SECRET_EVIDENCE_KEY: expected a 32-byte Ed25519 seed, got {len(seed)} bytes"
            )
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def to_secret(self) -> str:
        """The stored form: base64url of the 32-byte seed, one line."""
        return _b64url(
            self.private_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """A raw Ed25519 signature (64 bytes) of ``message``."""
        return self.private_key.sign(message)


def load_evidence_key(settings: Settings, *, create: bool | None = None) -> EvidenceKey:
    """The hub's evidence key from its secrets (``HUB_SECRET_EVIDENCE_KEY`` or the secrets dir).

    When no key exists and ``create`` is true (default: only on the embedded DuckDB
    warehouse), a new one is written to HUB_HOME/systems/secrets/evidence_key with mode
    0600. Raises SettingsError when there is no key and none may be created, or the
    stored key cannot be parsed.
    """
    secret = settings.secret(SECRET_NAME)
    if secret is not None:
        return EvidenceKey.from_secret(secret)
    if create is None:
        create = settings.warehouse_engine == "duckdb"
    if not create:
        raise SettingsError(
            "HUB_SECRET_EVIDENCE_KEY is not set: the hub has no evidence signing key "
            "(generate one with `python -c 'from hub.evidence import EvidenceKey; "
            "print(EvidenceKey.generate().to_secret())'`)"
        )
    return _create_key_file(settings.systems_dir / "secrets" / SECRET_NAME)


def _create_key_file(path: Path) -> EvidenceKey:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = EvidenceKey.generate()
    try:
        # O_EXCL: two processes starting at once must not end up with different keys
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the other process may not have written the key yet
            text = path.read_text().strip()
            if text:
                return EvidenceKey.from_secret(text)
            time.sleep(0.01)
        raise SettingsError(f"{path}: the evidence key file is empty") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(key.to_secret() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key


def public_key_set(*keys: EvidenceKey | Ed25519PublicKey) -> dict[str, Any]:
    """A JWKS-like key set for ``GET /v1/keys``: ``{"keys": [{kty, crv, x, kid, ...}]}``.

    Pass the current key first, then retired ones whose documents must stay checkable.
    """
    publics = [k.public_key if isinstance(k, EvidenceKey) else k for k in keys]
    return {"keys": [jwk_of(p) for p in publics]}


def public_keys_by_id(key_set: Mapping[str, Any] | Iterable[Any]) -> dict[str, Ed25519PublicKey]:
    """kid -> public key from a JWKS dict, a list of JWKs or of keys."""
    if isinstance(key_set, Mapping):
        if "keys" not in key_set:
            raise EvidenceError("malformed", "key set: expected an object with a 'keys' list")
        items: Iterable[Any] = key_set["keys"]
    else:
        items = key_set
    found: dict[str, Ed25519PublicKey] = {}
    for item in items:
        if isinstance(item, EvidenceKey):
            found[item.key_id] = item.public_key
        elif isinstance(item, Ed25519PublicKey):
            found[key_id_of(item)] = item
        elif isinstance(item, Mapping):
            if item.get("kty") != "OKP" or item.get("crv") != "Ed25519" or "x" not in item:
                continue  # a key of another kind is simply not ours to use
            try:
                public = Ed25519PublicKey.from_public_bytes(_b64url_decode(str(item["x"])))
            except (ValueError, binascii.Error) as exc:
                raise EvidenceError("malformed", f"key set: bad 'x' in {item!r}") from exc
            kid = key_id_of(public)
            if "kid" in item and item["kid"] != kid:
                raise EvidenceError(
                    "malformed", f"key set: kid {item['kid']!r} is not the key's thumbprint"
                )
            found[kid] = public
        else:
            raise EvidenceError("malformed", f"key set: unexpected entry {item!r}")
    return found


def sign_evidence(
    payload: Mapping[str, Any], key: EvidenceKey, *, issued_at: datetime | None = None
) -> dict[str, Any]:
    """A signed evidence document over ``payload``.

    ``payload`` must name claim, resource, version and request_id; ``issued_at`` is set to
    now (UTC) unless given in the payload or as the keyword. Typical members besides:
    subject (see :func:`subject_digest`), answer, data_as_of, gate_run, application,
    audit_seq. Raises ValueError for a missing member and TypeError for a non-JSON value.
    """
    evidence = dict(payload)
    if issued_at is not None or "issued_at" not in evidence:
        evidence["issued_at"] = issued_at or datetime.now(UTC)
    missing = [name for name in REQUIRED if evidence.get(name) is None]
    if missing:
        raise ValueError(f"evidence payload: missing {', '.join(missing)}")
    unsigned = {"evidence": _json_native(evidence), "key_id": key.key_id, "algorithm": ALGORITHM}
    signature = key.sign(canonical_json(unsigned))
    return {**unsigned, "signature": base64.b64encode(signature).decode("ascii")}


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
    document: Mapping[str, Any], public_keys: Mapping[str, Any] | Iterable[Any]
) -> VerifiedEvidence:
    """Check a document against a key set (the JWKS of ``GET /v1/keys``, or keys).

    Raises EvidenceError with reason ``malformed`` (shape, missing members, bad base64),
    ``unsupported_algorithm``, ``unknown_key`` (key_id not in the set) or
    ``bad_signature`` (the document was changed, or signed by another key).
    """
    if not isinstance(document, Mapping):
        raise EvidenceError("malformed", "evidence document: expected a JSON object")
    extra = set(document) - {"evidence", "key_id", "algorithm", "signature"}
    absent = {"evidence", "key_id", "algorithm", "signature"} - set(document)
    if absent or extra:
        raise EvidenceError(
            "malformed",
            "evidence document: expected members evidence, key_id, algorithm, signature"
            + (f"; missing {', '.join(sorted(absent))}" if absent else "")
            + (f"; unexpected {', '.join(sorted(extra))}" if extra else ""),
        )
    evidence = document["evidence"]
    if not isinstance(evidence, Mapping):
        raise EvidenceError("malformed", "evidence document: 'evidence' is not an object")
    if document["algorithm"] != ALGORITHM:
        raise EvidenceError(
            "unsupported_algorithm",
            f"evidence document: algorithm {document['algorithm']!r}, expected {ALGORITHM!r}",
        )
    key_id = document["key_id"]
    keys = public_keys_by_id(public_keys)
    if not isinstance(key_id, str) or key_id not in keys:
        raise EvidenceError(
            "unknown_key",
            f"evidence document: key_id {key_id!r} is not in the key set "
            f"(known: {', '.join(sorted(keys)) or 'none'})",
        )
    try:
        signature = base64.b64decode(str(document["signature"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceError("malformed", "evidence document: signature is not base64") from exc
    try:
        message = canonical_json(
            {"evidence": evidence, "key_id": key_id, "algorithm": document["algorithm"]}
        )
    except (TypeError, ValueError) as exc:
        raise EvidenceError("malformed", f"evidence document: not canonical JSON ({exc})") from exc
    try:
        keys[key_id].verify(signature, message)
    except InvalidSignature as exc:
        raise EvidenceError(
            "bad_signature",
            f"evidence document: the signature does not match its content under key {key_id}",
        ) from exc
    missing = [name for name in REQUIRED if evidence.get(name) is None]
    if missing:
        raise EvidenceError("malformed", f"evidence: missing {', '.join(missing)}")
    try:
        issued_at = datetime.fromisoformat(str(evidence["issued_at"]).replace("Z", "+00:00"))
    except ValueError as exc:
        raise EvidenceError("malformed", "evidence: issued_at is not an ISO 8601 time") from exc
    return VerifiedEvidence(
        evidence=dict(evidence),
        key_id=key_id,
        claim=evidence["claim"],
        resource=str(evidence["resource"]),
        version=evidence["version"],
        issued_at=issued_at,
        request_id=str(evidence["request_id"]),
    )
