"""The hub's signatures and digests, in one of two profiles chosen by ``HUB_CRYPTO_PROFILE``.

- ``standard`` (default): Ed25519 signatures (JWS ``EdDSA``, RFC 8037), SHA-256 digests,
  HMAC-SHA-256.
- ``gm``: the national commercial cryptography algorithms a deployment needs to pass a
  GB/T 39786 assessment: SM2 signatures (GB/T 32918, the default user ID
  ``1234567812345678``; JWS ``alg`` ``SM2SM3``), SM3 digests, HMAC-SM3.

A :class:`Signer` holds a private key; :func:`verifier_of` turns a public JWK into a
:class:`Verifier`. Key ids are RFC 7638 JWK thumbprints (SHA-256), so anyone holding a
public key can recompute its id. :func:`jws_sign` / :func:`jws_verify` make and check
compact JWS documents (RFC 7515) whose payload is canonical JSON.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


class Profile(StrEnum):
    standard = "standard"
    gm = "gm"


class SignatureError(ValueError):
    """A signature, key or JWS that does not check out; ``reason`` says which check."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_json(value: Any) -> bytes:
    """The exact bytes that are signed: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest(profile: Profile, data: bytes) -> str:
    """Hex digest of ``data``: SHA-256, or SM3 in the ``gm`` profile."""
    name = "sm3" if profile is Profile.gm else "sha256"
    return hashlib.new(name, data).hexdigest()


def keyed_digest(profile: Profile, key: bytes, data: bytes) -> str:
    """base64url HMAC of ``data`` under ``key``: HMAC-SHA-256, or HMAC-SM3."""
    name = "sm3" if profile is Profile.gm else "sha256"
    return b64url(hmac.new(key, data, lambda: hashlib.new(name)).digest())


def thumbprint(members: Mapping[str, str]) -> str:
    """RFC 7638: base64url(SHA-256) of the required members in lexicographic order."""
    text = json.dumps(dict(sorted(members.items())), separators=(",", ":"))
    return b64url(hashlib.sha256(text.encode("ascii")).digest())


class Verifier(Protocol):
    alg: str
    key_id: str

    def verify(self, signature: bytes, message: bytes) -> bool: ...

    def public_jwk(self) -> dict[str, str]: ...


class Signer(Verifier, Protocol):
    def sign(self, message: bytes) -> bytes: ...

    def to_secret(self) -> str: ...


# ---------------------------------------------------------------- Ed25519


class Ed25519Verifier:
    alg = "EdDSA"

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self.public_key = public_key
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._x = b64url(raw)
        self.key_id = thumbprint({"crv": "Ed25519", "kty": "OKP", "x": self._x})

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def public_jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self._x, "kid": self.key_id,
                "alg": self.alg, "use": "sig"}  # fmt: skip


class Ed25519Signer(Ed25519Verifier):
    """An Ed25519 key; its secret form is base64url of the 32-byte seed (or PKCS#8 PEM)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        super().__init__(private_key.public_key())
        self.private_key = private_key

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_secret(cls, secret: str, variable: str = "the key") -> Ed25519Signer:
        text = secret.strip()
        if text.startswith("-----BEGIN"):
            loaded = serialization.load_pem_private_key(text.encode("ascii"), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise SignatureError("malformed", f"{variable}: the PEM key is not Ed25519")
            return cls(loaded)
        try:
            seed = b64url_decode(text.replace("+", "-").replace("/", "_").rstrip("="))
        except (binascii.Error, ValueError) as exc:
            raise SignatureError("malformed", f"{variable}: not base64 or PEM") from exc
        if len(seed) != 32:
            raise SignatureError(
                "malformed", f"{variable}: expected a 32-byte Ed25519 seed, got {len(seed)} bytes"
            )
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def to_secret(self) -> str:
        return b64url(
            self.private_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


# ---------------------------------------------------------------- profiles


def generate_signer(profile: Profile) -> Signer:
    if profile is Profile.gm:
        from hub.sm2 import Sm2Signer

        return Sm2Signer.generate()
    return Ed25519Signer.generate()


def signer_from_secret(profile: Profile, secret: str, variable: str) -> Signer:
    """The private key stored in ``secret`` for ``profile``; raises SignatureError."""
    if profile is Profile.gm:
        from hub.sm2 import Sm2Signer

        return Sm2Signer.from_secret(secret, variable)
    return Ed25519Signer.from_secret(secret, variable)


def verifier_of(jwk: Mapping[str, Any]) -> Verifier:
    """A verifier for a public JWK (Ed25519 OKP, or an SM2 EC key); raises SignatureError."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    try:
        if kty == "OKP" and crv == "Ed25519":
            verifier: Verifier = Ed25519Verifier(
                Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk["x"])))
            )
        elif kty == "EC" and crv == "SM2":
            from hub.sm2 import Sm2Verifier

            verifier = Sm2Verifier.from_jwk(jwk)
        else:
            raise SignatureError("unsupported_algorithm", f"key of kind {kty}/{crv} is not ours")
    except (KeyError, ValueError, binascii.Error) as exc:
        if isinstance(exc, SignatureError):
            raise
        raise SignatureError("malformed", f"key set: bad public key {dict(jwk)!r}") from exc
    if "kid" in jwk and jwk["kid"] != verifier.key_id:
        raise SignatureError(
            "malformed", f"key set: kid {jwk['kid']!r} is not the key's thumbprint"
        )
    return verifier


def key_set(*keys: Verifier) -> dict[str, Any]:
    """A JWKS ``{"keys": [...]}`` of public keys, each once, in the order given."""
    seen: dict[str, dict[str, str]] = {}
    for key in keys:
        seen.setdefault(key.key_id, key.public_jwk())
    return {"keys": list(seen.values())}


def verifiers_by_id(keys: Mapping[str, Any] | Any) -> dict[str, Verifier]:
    """kid -> verifier from a JWKS dict, a list of JWKs, or Signer/Verifier objects."""
    if isinstance(keys, Mapping):
        if "keys" not in keys or not isinstance(keys["keys"], list):
            raise SignatureError("malformed", "key set: expected an object with a 'keys' list")
        items = keys["keys"]
    else:
        items = list(keys)
    found: dict[str, Verifier] = {}
    for item in items:
        if isinstance(item, Mapping):
            if (item.get("kty"), item.get("crv")) not in {("OKP", "Ed25519"), ("EC", "SM2")}:
                continue  # a key of another kind is simply not ours to use
            verifier = verifier_of(item)
        elif hasattr(item, "verify") and hasattr(item, "key_id"):
            verifier = item
        else:
            raise SignatureError("malformed", f"key set: unexpected entry {item!r}")
        found[verifier.key_id] = verifier
    return found


# ---------------------------------------------------------------- compact JWS


def jws_sign(payload: Mapping[str, Any], signer: Signer, typ: str) -> str:
    """A compact JWS of ``payload`` (canonical JSON), header ``{alg, kid, typ}``."""
    header = canonical_json({"alg": signer.alg, "kid": signer.key_id, "typ": typ})
    signing_input = f"{b64url(header)}.{b64url(canonical_json(payload))}"
    return f"{signing_input}.{b64url(signer.sign(signing_input.encode('ascii')))}"


def jws_verify(
    token: str, keys: Mapping[str, Verifier], typ: str
) -> tuple[dict[str, Any], Verifier]:
    """The payload of a compact JWS and the key that signed it. Raises SignatureError with
    reason ``malformed``, ``unsupported_algorithm``, ``unknown_key`` or ``bad_signature``."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 100_000:
        raise SignatureError("malformed", "expected a compact JWS: header.payload.signature")
    head, body, signature = token.split(".")
    try:
        header = json.loads(b64url_decode(head))
        payload = json.loads(b64url_decode(body))
        raw_signature = b64url_decode(signature)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise SignatureError("malformed", f"the JWS is not base64url JSON ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise SignatureError("malformed", "the JWS header and payload must be JSON objects")
    if header.get("typ") != typ:
        raise SignatureError("malformed", f"typ {header.get('typ')!r}, expected {typ!r}")
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        known = ", ".join(sorted(keys)) or "none"
        raise SignatureError("unknown_key", f"key {kid!r} is not in the key set (known: {known})")
    if header.get("alg") != key.alg:
        raise SignatureError(
            "unsupported_algorithm", f"alg {header.get('alg')!r}, but key {kid} is {key.alg}"
        )
    if not key.verify(raw_signature, f"{head}.{body}".encode("ascii")):
        raise SignatureError("bad_signature", f"the signature does not match under key {kid}")
    return payload, key
