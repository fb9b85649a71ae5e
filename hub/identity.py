"""Applicants proven, not named: assertions from an identity provider the bureau trusts.

An applicant-only grant lets an application read the rows of *the person it serves*, so
the hub must know who that is from someone other than the application. The application
sends ``X-Applicant-Assertion: <JWT>``, a short-lived token that the city's identity
provider (the one the citizen signed in with) issued to it. The hub accepts it only when:

- it is signed (an asymmetric algorithm: EdDSA, ES256/384, RS256, PS256; never ``none``
  or a shared secret) by a key of the provider's key set (``HUB_IDP_JWKS``: a JWKS file,
  or an https URL refreshed every ``HUB_IDP_JWKS_CACHE_S``);
- ``iss`` is ``HUB_IDP_ISSUER``, ``aud`` is this hub (``HUB_IDP_AUDIENCE``);
- ``azp`` (the party it was issued to) is the calling application;
- ``iat`` and ``exp`` are present, it has not expired (30 s leeway), and it lives at most
  ``HUB_IDP_MAX_TTL_S`` (10 minutes by default);
- ``sub`` is a valid citizen ID or credit code (canonical form: :mod:`hub.identifiers`).

For the demo profile (the demo and the tests) the hub ships a small local identity provider
(:class:`LocalIdentityProvider`, ``hub idp issue``), whose key is generated under
``HUB_HOME/secrets`` like the hub's other demo keys and is refused outside the demo.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.identifiers import IdentifierError, parse_subject
from hub.keyring import secret_bytes
from hub.settings import Settings, SettingsError
from hub.signing import Ed25519Verifier

LOCAL_ISSUER = "urn:exchange-hub:local-idp"
ALGORITHMS = ["EdDSA", "ES256", "ES384", "RS256", "PS256"]
LEEWAY_S = 30


class ApplicantAssertionError(PermissionError):
    """An applicant assertion the hub does not accept; the message says why."""


@dataclass(frozen=True)
class Applicant:
    """Who an accepted assertion says the applicant is."""

    subject: str  # canonical citizen ID or credit code
    issuer: str
    token_id: str | None
    expires_at: float


class LocalIdentityProvider:
    """The demo's identity provider: Ed25519, key in the hub's demo secrets."""

    def __init__(self, settings: Settings) -> None:
        if not settings.demo:
            raise SettingsError(
                "the local identity provider is for the demo profile only: set HUB_IDP_JWKS "
                "and HUB_IDP_ISSUER to the city's identity provider"
            )
        self.settings = settings
        seed = secret_bytes(settings, "idp_key")
        self.key = Ed25519PrivateKey.from_private_bytes(seed[:32])
        public = Ed25519Verifier(self.key.public_key())
        self.kid = public.key_id
        self._jwk = public.public_jwk()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._jwk]}

    def issue(
        self, applicant: str, application: str, *, ttl_s: int = 300, now: float | None = None
    ) -> str:
        """An assertion that ``applicant`` signed in to ``application`` (raises
        IdentifierError for an ID that is not valid)."""
        issued = int(now if now is not None else time.time())
        claims = {
            "iss": LOCAL_ISSUER,
            "sub": parse_subject(applicant, name="applicant"),
            "aud": self.settings.idp_audience,
            "azp": application,
            "iat": issued,
            "exp": issued + ttl_s,
            "jti": f"{issued}-{id(self)}-{time.perf_counter_ns()}",
        }
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})


class AssertionVerifier:
    """Checks applicant assertions for one API process (the key set cached)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._keys: tuple[float, jwt.PyJWKSet] | None = None
        self.issuer = settings.idp_issuer
        if not settings.idp_jwks and settings.demo:
            self.issuer = settings.idp_issuer or LOCAL_ISSUER

    def configured(self) -> bool:
        return bool(self.settings.idp_jwks) or self.settings.demo

    def _key_set(self) -> jwt.PyJWKSet:
        with self._lock:
            ttl = self.settings.idp_jwks_cache_s
            if self._keys is not None and time.monotonic() - self._keys[0] < ttl:
                return self._keys[1]
            self._keys = (time.monotonic(), jwt.PyJWKSet.from_dict(self._load_jwks()))
            return self._keys[1]

    def _load_jwks(self) -> dict[str, Any]:
        source = self.settings.idp_jwks
        if not source:
            return LocalIdentityProvider(self.settings).jwks()
        if source.startswith("https://") or source.startswith("http://"):
            import httpx

            response = httpx.get(source, timeout=5.0)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data
        loaded: dict[str, Any] = json.loads(Path(source).read_text(encoding="utf-8"))
        return loaded

    def verify(self, token: str, application: str) -> Applicant:
        """The applicant of ``token``, issued to ``application``; raises ApplicantAssertionError."""
        if not self.configured():
            raise ApplicantAssertionError(
                "no identity provider is configured (HUB_IDP_JWKS, HUB_IDP_ISSUER): "
                "applicant-only grants cannot be served"
            )
        if not token or len(token) > 8_192 or token.count(".") != 2:
            raise ApplicantAssertionError("X-Applicant-Assertion: expected a signed JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise ApplicantAssertionError(f"X-Applicant-Assertion: not a JWT ({exc})") from exc
        if header.get("alg") not in ALGORITHMS:
            raise ApplicantAssertionError(
                f"X-Applicant-Assertion: algorithm {header.get('alg')!r} is not accepted "
                f"(expected one of {', '.join(ALGORITHMS)})"
            )
        try:
            keys = self._key_set()
        except Exception as exc:
            raise ApplicantAssertionError(
                f"the identity provider's keys cannot be read: {exc}"
            ) from exc
        kid = header.get("kid")
        matching = [k for k in keys.keys if kid is None or k.key_id == kid]
        if not matching:
            raise ApplicantAssertionError(
                f"X-Applicant-Assertion: key {kid!r} is not one of the identity provider's"
            )
        try:
            claims = jwt.decode(
                token,
                key=matching[0].key,
                algorithms=[str(header["alg"])],
                audience=self.settings.idp_audience,
                issuer=self.issuer or None,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApplicantAssertionError(
                "X-Applicant-Assertion: expired; ask for a new one"
            ) from exc
        except jwt.PyJWTError as exc:
            raise ApplicantAssertionError(f"X-Applicant-Assertion: not accepted ({exc})") from exc
        if claims.get("azp") != application:
            raise ApplicantAssertionError(
                f"X-Applicant-Assertion: it was issued to another application, not to {application}"
            )
        lifetime = float(claims["exp"]) - float(claims["iat"])
        if lifetime > self.settings.idp_max_ttl_s:
            raise ApplicantAssertionError(
                f"X-Applicant-Assertion: lives {lifetime:.0f} s, more than the "
                f"{self.settings.idp_max_ttl_s} s accepted"
            )
        try:
            subject = parse_subject(str(claims["sub"]), name="assertion sub")
        except IdentifierError as exc:
            raise ApplicantAssertionError(f"X-Applicant-Assertion: {exc}") from exc
        return Applicant(subject, str(claims["iss"]), claims.get("jti"), float(claims["exp"]))
