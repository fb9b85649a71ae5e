"""The city's identity provider as the tests run it, shared by the API tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TestIdentityProvider:
    """The city's identity provider as the tests run it: an Ed25519 key whose public set
    is the file HUB_IDP_JWKS names."""

    issuer = "https://idp.test.example"

    def __init__(self, folder: Path) -> None:
        import json

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from hub.signing import Ed25519Verifier

        self.key = Ed25519PrivateKey.generate()
        self.public = Ed25519Verifier(self.key.public_key())
        self.jwks_path = folder / "idp-jwks.json"
        self.jwks_path.write_text(json.dumps({"keys": [self.public.public_jwk()]}))

    def assertion(self, applicant: str, application: str, **claims: Any) -> str:
        import time

        import jwt

        now = int(time.time())
        payload = {"iss": self.issuer, "sub": applicant, "aud": "exchange-hub",
                   "azp": application, "iat": now, "exp": now + 300, **claims}  # fmt: skip
        headers = {"kid": self.public.key_id}
        return jwt.encode(payload, self.key, algorithm="EdDSA", headers=headers)


CURRENT: dict[str, TestIdentityProvider] = {}  # the current test's, for headers()
KEY_APPS: dict[str, str] = {}  # API key -> the application it belongs to
