"""Test keys and tokens shaped like babelforce Cloud telephony JWTs.

`mint` signs with PyJWT (RS256 by default, also `alg="none"`); `forge_hs256` hand-builds the classic
key-confusion attack (HMAC keyed with the RSA *public* PEM), which PyJWT rightly refuses to produce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "auth.babelforce.com"
SUBJECT = "com.babelforce.svc.telephony.realtime"
ACCOUNT = "acct-1"
KID = "jwt-rsa-2048-v1"


def generate_rsa_keypair(bits: int = 2048) -> tuple[str, str]:
    """A fresh RSA key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private_pem, public_pem


def babelforce_claims(
    *, drop: Iterable[str] = (), now: float | None = None, **overrides: Any
) -> dict[str, Any]:
    """A valid claim set (iss, sub, aud, exp=now+1h, iat, jti); `overrides` applied, `drop` removed."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": ACCOUNT,
        "exp": issued + 3600,
        "iat": issued,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    for name in drop:
        claims.pop(name, None)
    return claims


def mint(
    private_pem: str | None,
    *,
    kid: str | None = KID,
    alg: str = "RS256",
    drop: Iterable[str] = (),
    headers: Mapping[str, Any] | None = None,
    now: float | None = None,
    **claims: Any,
) -> str:
    """A token signed by PyJWT. `kid=None` omits the header; `alg="none"` needs `private_pem=None`."""
    header: dict[str, Any] = {} if kid is None else {"kid": kid}
    header.update(headers or {})
    payload = babelforce_claims(drop=drop, now=now, **claims)
    return jwt.encode(payload, private_pem or "", algorithm=alg, headers=header or None)  # "" = no key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge_hs256(
    secret: str | bytes, *, kid: str | None = KID, drop: Iterable[str] = (), **claims: Any
) -> str:
    """An HS256 token keyed with `secret` (e.g. the RSA public PEM), built by hand."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"} | ({} if kid is None else {"kid": kid})
    payload = babelforce_claims(drop=drop, **claims)
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def bearer_subprotocol(token: str) -> str:
    """The browser carrier entry for `token`: `bearer.<base64url(UTF-8), no padding>`."""
    return "bearer." + _b64url(token.encode("utf-8"))
