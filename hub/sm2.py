"""SM2 signatures (GB/T 32918.2, SM3 digest, Z value with the default user ID
``1234567812345678``) on the system OpenSSL >= 3.0 (``libcrypto.so.3``) through ctypes.

Why not a package: of the PyPI candidates surveyed on these machines (gmssl, gmssl-pyx,
gmssl-fast, gmssl-python, pygmssl, easy-gmssl, snowland-smx, gmalg, tongsuopy) every one
but tongsuopy (unreleased since 2023) failed a check: a non-cryptographic nonce
(``random.choice`` in gmssl), public keys that silently come out as zeros, a Z value left
out by default, a hex-prefix bug failing 6 keys in 40, or 18 signatures a second. The
OpenSSL the ``hashlib`` and ``ssl`` modules already load does SM2 at C speed (about 3,000
signatures a second here), passes the GM/T 0003.5 A.2 test vector and cross-checks with
``openssl pkeyutl`` both ways; this module is the 18 libcrypto calls that need, each with
its argument types declared. Every key loaded must be an SM2 key (never plain ECDSA), and
the distinguishing ID is always set explicitly (OpenSSL's own default ID is empty).

Keys: the private key's secret form is base64url of the 32-byte scalar; the public JWK is
``{"kty": "EC", "crv": "SM2", "x", "y"}`` (coordinates base64url, 32 bytes each), its id the
RFC 7638 thumbprint; JWS ``alg`` is ``SM2SM3``; signatures are raw ``r || s`` (64 bytes).
"""

from __future__ import annotations

import binascii
import ctypes
import ctypes.util
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from hub.signing import SignatureError, b64url, b64url_decode, thumbprint

ALG = "SM2SM3"
DEFAULT_ID = b"1234567812345678"
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
# ECPrivateKey DER around the scalar (curve sm2), and the SubjectPublicKeyInfo prefix
_SEC1 = (bytes.fromhex("30310201010420"), bytes.fromhex("a00a06082a811ccf5501822d"))
_SPKI = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")

_P, _C, _S = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
_SIGNATURES: tuple[tuple[str, Any, list[Any]], ...] = (
    ("d2i_AutoPrivateKey", _P, [_P, ctypes.POINTER(_C), ctypes.c_long]),
    ("d2i_PUBKEY", _P, [_P, ctypes.POINTER(_C), ctypes.c_long]),
    ("i2d_PUBKEY", ctypes.c_int, [_P, ctypes.POINTER(_P)]),
    ("CRYPTO_free", None, [_P, _C, ctypes.c_int]),
    ("EVP_PKEY_is_a", ctypes.c_int, [_P, _C]),
    ("EVP_PKEY_free", None, [_P]),
    ("EVP_sm3", _P, []),
    ("EVP_MD_CTX_new", _P, []),
    ("EVP_MD_CTX_free", None, [_P]),
    ("EVP_PKEY_CTX_new", _P, [_P, _P]),
    ("EVP_PKEY_CTX_free", None, [_P]),
    ("EVP_PKEY_CTX_set1_id", ctypes.c_int, [_P, _C, ctypes.c_int]),
    ("EVP_MD_CTX_set_pkey_ctx", None, [_P, _P]),
    ("EVP_DigestSignInit", ctypes.c_int, [_P, _P, _P, _P, _P]),
    ("EVP_DigestSign", ctypes.c_int, [_P, _C, ctypes.POINTER(_S), _C, _S]),
    ("EVP_DigestVerifyInit", ctypes.c_int, [_P, _P, _P, _P, _P]),
    ("EVP_DigestVerify", ctypes.c_int, [_P, _C, _S, _C, _S]),
    ("ERR_clear_error", None, []),
)
_lib: Any = None
_sm3: Any = None


def _crypto() -> Any:
    """libcrypto with every function typed (loaded on first use: the standard profile never
    needs it). Raises SignatureError when this OpenSSL has no SM2."""
    global _lib, _sm3
    if _lib is None:
        name = ctypes.util.find_library("crypto") or "libcrypto.so.3"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise SignatureError("unsupported_algorithm", f"no OpenSSL libcrypto: {exc}") from exc
        for function, result, arguments in _SIGNATURES:
            bound = getattr(lib, function)
            bound.restype, bound.argtypes = result, arguments
        _sm3 = lib.EVP_sm3()
        if not _sm3:
            raise SignatureError("unsupported_algorithm", "this OpenSSL has no SM3")
        _lib = lib
    return _lib


def _load(reader: Callable[..., Any], der: bytes) -> Any:
    lib = _crypto()
    buffer = ctypes.create_string_buffer(der, len(der))
    pkey = reader(None, ctypes.byref(ctypes.cast(buffer, _C)), len(der))
    if not pkey or lib.EVP_PKEY_is_a(pkey, b"SM2") != 1:  # never fall back to plain ECDSA
        lib.EVP_PKEY_free(pkey)
        lib.ERR_clear_error()
        raise SignatureError("malformed", "not a valid SM2 key")
    return pkey


def _run(pkey: Any, init: Callable[..., int], operation: Callable[[Any], Any]) -> Any:
    lib = _crypto()
    digest_ctx, key_ctx = lib.EVP_MD_CTX_new(), lib.EVP_PKEY_CTX_new(pkey, None)
    try:
        if (
            not (digest_ctx and key_ctx)
            or lib.EVP_PKEY_CTX_set1_id(key_ctx, DEFAULT_ID, len(DEFAULT_ID)) != 1
        ):
            raise SignatureError("unsupported_algorithm", "OpenSSL SM2 context setup failed")
        lib.EVP_MD_CTX_set_pkey_ctx(digest_ctx, key_ctx)  # carries the distinguishing ID
        if init(digest_ctx, None, _sm3, None, pkey) != 1:
            raise SignatureError("unsupported_algorithm", "OpenSSL SM2 init failed")
        return operation(digest_ctx)
    finally:
        # the digest context does not own the key context: both are freed here
        lib.EVP_MD_CTX_free(digest_ctx)
        lib.EVP_PKEY_CTX_free(key_ctx)
        lib.ERR_clear_error()


def _der_int(raw: bytes) -> bytes:
    raw = raw.lstrip(b"\0") or b"\0"
    pad = raw[0] >> 7
    return b"\x02" + bytes([len(raw) + pad]) + b"\0" * pad + raw


class Sm2Verifier:
    """An SM2 public key (65-byte uncompressed point, checked to be on the curve)."""

    alg = ALG

    def __init__(self, point: bytes) -> None:
        if len(point) != 65 or point[0] != 4:
            raise SignatureError("malformed", "SM2 public key: expected 65-byte 04||x||y")
        self.point = bytes(point)
        self._pkey = _load(_crypto().d2i_PUBKEY, _SPKI + self.point)
        self.key_id = thumbprint(
            {"crv": "SM2", "kty": "EC", "x": b64url(point[1:33]), "y": b64url(point[33:])}
        )

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> Sm2Verifier:
        try:
            x, y = b64url_decode(str(jwk["x"])), b64url_decode(str(jwk["y"]))
        except (KeyError, ValueError, binascii.Error) as exc:
            raise SignatureError("malformed", "SM2 JWK: expected x and y") from exc
        if len(x) != 32 or len(y) != 32:
            raise SignatureError("malformed", "SM2 JWK: x and y are 32 bytes each")
        return cls(b"\x04" + x + y)

    def public_jwk(self) -> dict[str, str]:
        return {"kty": "EC", "crv": "SM2", "x": b64url(self.point[1:33]),
                "y": b64url(self.point[33:]), "kid": self.key_id, "alg": ALG,
                "use": "sig"}  # fmt: skip

    def verify(self, signature: bytes, message: bytes) -> bool:
        if len(signature) != 64:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if not (0 < r < N and 0 < s < N):
            return False
        body = _der_int(signature[:32]) + _der_int(signature[32:])
        der = b"\x30" + bytes([len(body)]) + body
        lib = _crypto()
        result = _run(
            self._pkey,
            lib.EVP_DigestVerifyInit,
            lambda ctx: lib.EVP_DigestVerify(ctx, der, len(der), message, len(message)),
        )
        return bool(result == 1)

    def __del__(self) -> None:
        pkey = getattr(self, "_pkey", None)
        if pkey and _lib is not None:
            _lib.EVP_PKEY_free(pkey)


class Sm2Signer(Sm2Verifier):
    """An SM2 private key: a 32-byte scalar in [1, n-2]."""

    def __init__(self, scalar: bytes) -> None:
        if len(scalar) != 32 or not 1 <= int.from_bytes(scalar, "big") <= N - 2:
            raise SignatureError("malformed", "SM2 private key: 32 bytes in [1, n-2]")
        self._scalar = bytes(scalar)
        self._private = _load(_crypto().d2i_AutoPrivateKey, _SEC1[0] + scalar + _SEC1[1])
        lib = _crypto()
        out = _P()
        size = lib.i2d_PUBKEY(self._private, ctypes.byref(out))
        if size <= 0:
            raise SignatureError("malformed", "SM2 private key: no public key derived")
        spki = ctypes.string_at(out, size)
        lib.CRYPTO_free(out, None, 0)
        super().__init__(spki[-65:])

    @classmethod
    def generate(cls) -> Sm2Signer:
        while True:  # rejection sampling keeps the scalar uniform in range
            scalar = secrets.token_bytes(32)
            if 1 <= int.from_bytes(scalar, "big") <= N - 2:
                return cls(scalar)

    @classmethod
    def from_secret(cls, secret: str, variable: str = "the key") -> Sm2Signer:
        try:
            scalar = b64url_decode(secret.strip())
        except (ValueError, binascii.Error) as exc:
            raise SignatureError("malformed", f"{variable}: not base64url") from exc
        try:
            return cls(scalar)
        except SignatureError as exc:
            raise SignatureError("malformed", f"{variable}: {exc}") from exc

    def to_secret(self) -> str:
        return b64url(self._scalar)

    def sign(self, message: bytes) -> bytes:
        """Raw ``r || s`` (64 bytes) of ``message`` (SM3 over Z || message)."""
        lib = _crypto()

        def operation(ctx: Any) -> bytes:
            buffer, size = ctypes.create_string_buffer(72), _S(72)
            if lib.EVP_DigestSign(ctx, buffer, ctypes.byref(size), message, len(message)) != 1:
                raise SignatureError("bad_signature", "OpenSSL could not sign with SM2")
            der = buffer.raw[: size.value]  # SEQUENCE { INTEGER r, INTEGER s }, short form
            r_len = der[3]
            s_len = der[5 + r_len]
            r = der[4 : 4 + r_len][-32:].rjust(32, b"\0")
            s = der[6 + r_len : 6 + r_len + s_len][-32:].rjust(32, b"\0")
            return r + s

        signature: bytes = _run(self._private, lib.EVP_DigestSignInit, operation)
        return signature

    def __del__(self) -> None:
        pkey = getattr(self, "_private", None)
        if pkey and _lib is not None:
            _lib.EVP_PKEY_free(pkey)
        super().__del__()
