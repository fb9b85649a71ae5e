"""Signed, short-lived file URLs and list page tokens for the Delta Sharing server.

A Delta Sharing client fetches data files with no ``Authorization`` header, so each file
URL carries its own credential: an HMAC-SHA256, under the hub's sharing key, of::

    exchange-hub/share-file/v1 \\n application \\n grant id \\n key id \\n file \\n expiry

(``file`` the path relative to the sharing folder, ``expiry`` Unix seconds). The server
checks the MAC in constant time, then the expiry, then that the grant is still active
and the key not revoked; a URL is good for one file, one grant of one application,
until it expires (``HUB_SHARING_URL_SECONDS``). Page tokens of the list endpoints are
MACed the same way, bound to the list they page.

The key is ``HUB_SECRET_SHARING_URL_KEY`` (32 random bytes or more, base64url; ``hub keys
generate sharing_url_key``). Like the hub's other keys (:mod:`hub.keyring`) it is
generated under HUB_HOME only under the demo profile; a deployment must set it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from hub.settings import Settings, SettingsError

SECRET_NAME = "sharing_url_key"  # noqa: S105 - the name of the secret, not its value
FILE_TAG = b"exchange-hub/share-file/v1"
PAGE_TAG = b"exchange-hub/share-page/v1"
MIN_KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UrlSigner:
    """MACs file URLs and page tokens with one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise SettingsError(
                f"HUB_SECRET_SHARING_URL_KEY: at least {MIN_KEY_BYTES} bytes of key expected, "
                f"got {len(key)}"
            )
        self._key = key

    def _mac(self, *parts: str | bytes) -> str:
        message = b"\n".join(p if isinstance(p, bytes) else p.encode() for p in parts)
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def sign_file(
        self, *, application: str, grant_id: str, key_id: str, path: str, expires: int
    ) -> str:
        """The signature of one file URL."""
        return self._mac(FILE_TAG, application, grant_id, key_id, path, str(expires))

    def file_signature_valid(
        self,
        *,
        application: str,
        grant_id: str,
        key_id: str,
        path: str,
        expires: int,
        signature: str,
    ) -> bool:
        expected = self.sign_file(
            application=application, grant_id=grant_id, key_id=key_id, path=path, expires=expires
        )
        return hmac.compare_digest(expected.encode(), signature.encode())

    def page_token(self, scope: str, offset: int) -> str:
        """An opaque token for the page starting at ``offset`` of the list ``scope``."""
        return f"{offset}.{self._mac(PAGE_TAG, scope, str(offset))}"

    def page_offset(self, scope: str, token: str) -> int:
        """The offset of a token :meth:`page_token` made for ``scope``; raises ValueError
        for any other string."""
        offset, _, mac = token.partition(".")
        if not offset.isdigit() or len(offset) > 9 or not mac:
            raise ValueError("not a page token this server returned")
        if not hmac.compare_digest(self._mac(PAGE_TAG, scope, offset).encode(), mac.encode()):
            raise ValueError("not a page token this server returned for this list")
        return int(offset)


def load_url_key(settings: Settings) -> bytes:
    """The sharing key, ``HUB_SECRET_SHARING_URL_KEY`` (:mod:`hub.keyring`: generated under
    HUB_HOME only under the demo profile). Raises SettingsError naming the variable."""
    from hub.keyring import secret_bytes

    return secret_bytes(settings, SECRET_NAME, MIN_KEY_BYTES)
