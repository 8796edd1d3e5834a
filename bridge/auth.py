"""Admission of the WebSocket upgrade: static bearer tokens, babelforce RS256 JWTs, browser carrier.

The server calls `Authenticator.authenticate` from `process_request`, before the subprotocol check and
before `101`, so a refusal is a plain HTTP 401/403 and no RTVBP session ever exists for it.

Credentials arrive in one of two carriers:

- `Authorization: Bearer <token>` (telephony, any server-to-server client);
- `Sec-WebSocket-Protocol: rtvbp.v1, bearer.<base64url(UTF-8 token), no padding>` (browsers, which cannot
  set `Authorization` on a WebSocket). Browser requests are only admitted from an exact `Origin`
  allow-list, because a page on any site can open a socket and replay a token it obtained.

Tokens are secrets: they never appear in an exception message, a repr or a chained exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.exceptions import InvalidSubjectError

from bridge.protocol.negotiation import BEARER_SUBPROTOCOL_PREFIX

AuthMode = Literal["none", "token", "jwt"]
Carrier = Literal["none", "authorization", "subprotocol"]
AdmissionCause = Literal[
    "missing",
    "malformed",
    "bad_token",
    "bad_signature",
    "bad_algorithm",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_subject",
    "wrong_audience",
    "missing_claim",
    "unknown_kid",
    "bad_origin",
    "carrier_not_allowed",
]

JWT_ALGORITHM = "RS256"  # fixed by the babelforce Cloud contract; never taken from the token
MIN_RSA_KEY_BITS = 2048

_BEARER_PREFIX = "Bearer "
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_WHITESPACE = re.compile(r"\s")
_PEM_LABEL = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


@dataclass(frozen=True, slots=True)
class JwtKey:
    kid: str | None  # None = unnamed key, tried for any token
    pem: str  # PEM public key (validated/loaded when the Authenticator is built)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    mode: AuthMode
    tokens: tuple[str, ...] = ()  # static bearer tokens (mode "token")
    jwt_keys: tuple[JwtKey, ...] = ()  # RS256 public keys (mode "jwt"); several = rotation
    jwt_issuer: str = "auth.babelforce.com"
    jwt_subject: str = "com.babelforce.svc.telephony.realtime"
    jwt_accounts: tuple[str, ...] = ()  # aud allow-list (babelforce account ids); required in jwt mode
    jwt_leeway_s: float = 30.0
    allowed_origins: tuple[str, ...] = ()  # exact Origins for the browser carrier; empty = carrier refused


@dataclass(frozen=True, slots=True)
class Principal:
    """Who was admitted. Every field is safe to log (no credential material)."""

    mode: AuthMode
    carrier: Carrier
    account: str | None  # the authorised `aud` entry (jwt) or None
    subject: str | None
    token_id: str | None  # `jti`, for audit logs
    key_id: str | None  # kid of the key that verified the token (None: an unnamed key)


class AdmissionError(Exception):
    """The upgrade must be refused with `status` (401 credentials, 403 Origin).

    `cause` is a low-cardinality label for metrics; `str(err)` is a short fixed message. Neither ever
    contains the token, so both may be logged and sent as the HTTP response body. `malformed` is a
    carrier the client shaped wrongly (scheme, whitespace, base64); `bad_token` is a well-carried
    credential that is wrong (unknown static token, undecodable JWT, ill-typed claim).
    """

    def __init__(self, status: int, cause: AdmissionCause, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.cause: AdmissionCause = cause

    def __repr__(self) -> str:
        return f"AdmissionError(status={self.status}, cause={self.cause!r}, message={str(self)!r})"


def _unauthorized(cause: AdmissionCause, message: str) -> AdmissionError:
    return AdmissionError(401, cause, message)


def _forbidden(cause: AdmissionCause, message: str) -> AdmissionError:
    return AdmissionError(403, cause, message)


# --- key loading ---------------------------------------------------------------------------------------


def _load_rsa_public_key(pem: str, source: str) -> RSAPublicKey:
    """Parse one PEM public key; `source` names it in errors (a file name or setting, never the key)."""
    label = _PEM_LABEL.search(pem)
    if label is None:
        raise ValueError(f"{source}: not a PEM key (no '-----BEGIN ...-----' line)")
    if "PRIVATE" in label.group(1):
        raise ValueError(f"{source}: is a private key; provide only the RSA public key")
    if label.group(1) != "PUBLIC KEY" and label.group(1) != "RSA PUBLIC KEY":
        raise ValueError(f"{source}: expected a PUBLIC KEY block, found {label.group(1)}")
    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{source}: the PEM public key cannot be parsed") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"{source}: not an RSA key (RS256 needs RSA)")
    if key.key_size < MIN_RSA_KEY_BITS:
        raise ValueError(f"{source}: RSA key of {key.key_size} bits is too small (min {MIN_RSA_KEY_BITS})")
    return key


def load_jwt_keys(pems: Sequence[str], keys_dir: Path | None) -> tuple[JwtKey, ...]:
    """Collect the RS256 verification keys from settings.

    `pems` become unnamed keys. Each `<kid>.pem` in `keys_dir` (e.g. a Kubernetes Secret mounted as a
    volume; its hidden `..data` entries are skipped) becomes a key named `<kid>`. Raises `ValueError`
    naming the offending setting or file on anything unusable.
    """
    keys: list[JwtKey] = []
    for index, pem in enumerate(pems):
        _load_rsa_public_key(pem, f"jwt_public_keys[{index}]")
        keys.append(JwtKey(kid=None, pem=pem))
    if keys_dir is None:
        return tuple(keys)
    if not keys_dir.is_dir():
        raise ValueError(f"jwt_keys_dir {keys_dir}: not a readable directory")
    files = sorted(p for p in keys_dir.glob("*.pem") if not p.name.startswith("."))
    if not files:
        raise ValueError(f"jwt_keys_dir {keys_dir}: contains no <kid>.pem files")
    for path in files:
        try:
            pem = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ValueError(f"{path.name}: cannot read key file ({reason})") from None
        _load_rsa_public_key(pem, path.name)
        keys.append(JwtKey(kid=path.stem, pem=pem))
    return tuple(keys)


# --- carriers ------------------------------------------------------------------------------------------


def _split_offered(offered: Iterable[str]) -> list[str]:
    """Accept both parsed tokens and raw comma-separated header values (tokens never contain commas)."""
    return [part.strip() for entry in offered for part in entry.split(",") if part.strip()]


def _carrier_entries(offered: Sequence[str]) -> list[str]:
    return [t for t in _split_offered(offered) if t.startswith(BEARER_SUBPROTOCOL_PREFIX)]


def _check_token_shape(token: str) -> str:
    if not token or _WHITESPACE.search(token):
        raise _unauthorized("malformed", "malformed bearer token")
    return token


def bearer_from_subprotocols(offered: Sequence[str]) -> str | None:
    """The token carried as `bearer.<base64url>` in the offered subprotocols, or None if there is none.

    Decoding is strict (base64url alphabet, no padding, canonical trailing bits, valid UTF-8, exactly
    one carrier entry); anything else raises `AdmissionError` 401 `malformed`.
    """
    entries = _carrier_entries(offered)
    return _decode_carrier(entries) if entries else None


def _decode_carrier(entries: Sequence[str]) -> str:
    if len(entries) > 1:
        raise _unauthorized("malformed", "more than one bearer subprotocol offered")
    encoded = entries[0][len(BEARER_SUBPROTOCOL_PREFIX) :]
    if not _BASE64URL.fullmatch(encoded) or len(encoded) % 4 == 1:
        raise _unauthorized("malformed", "bearer subprotocol is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        token = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("malformed", "bearer subprotocol is not base64url UTF-8") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != encoded:
        raise _unauthorized("malformed", "bearer subprotocol is not canonical base64url")
    return _check_token_shape(token)


def _bearer_from_authorization(authorization: str) -> str:
    # Exact, case-sensitive scheme and no whitespace in the token, as the babelforce reference validator.
    if not authorization.startswith(_BEARER_PREFIX):
        raise _unauthorized("malformed", "Authorization must be 'Bearer <token>'")
    return _check_token_shape(authorization[len(_BEARER_PREFIX) :])


def _validate_origin(origin: str) -> str:
    parts = urlsplit(origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path
        or parts.query
        or parts.fragment
        or origin != origin.lower()
    ):
        raise ValueError(
            f"allowed origin {origin!r} must be a lower-case 'scheme://host[:port]' (no path or slash)"
        )
    return origin


# --- verifiers -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verified:
    account: str | None = None
    subject: str | None = None
    token_id: str | None = None
    key_id: str | None = None


class _TokenVerifier:
    """Static shared secrets, compared in constant time."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if not tokens:
            raise ValueError("auth mode 'token' needs at least one token")
        for index, token in enumerate(tokens):
            if not token or _WHITESPACE.search(token):
                raise ValueError(f"auth token #{index + 1} is empty or contains whitespace")
        # Comparing SHA-256 digests keeps compare_digest's inputs equal-length, so timing does not even
        # reveal the configured tokens' lengths.
        self._digests = tuple(hashlib.sha256(t.encode("utf-8")).digest() for t in tokens)

    def verify(self, token: str) -> _Verified:
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        matched = False
        for digest in self._digests:  # no early exit: every configured token is compared
            matched |= hmac.compare_digest(presented, digest)
        if not matched:
            raise _unauthorized("bad_token", "unknown bearer token")
        return _Verified()


_REQUIRED_CLAIMS = ("iss", "sub", "exp", "aud")


class _JwtVerifier:
    """babelforce Cloud telephony JWTs: RS256 only, exact iss/sub, exp required, aud in an allow-list."""

    def __init__(self, config: AuthConfig) -> None:
        if not config.jwt_keys:
            raise ValueError("auth mode 'jwt' needs at least one RS256 public key")
        if not config.jwt_accounts:
            raise ValueError("auth mode 'jwt' needs the allowed accounts (jwt_accounts)")
        if any(not account for account in config.jwt_accounts):
            raise ValueError("jwt_accounts contains an empty account id")
        self._named: dict[str, RSAPublicKey] = {}
        self._unnamed: list[RSAPublicKey] = []
        for index, key in enumerate(config.jwt_keys):
            source = f"jwt key {key.kid!r}" if key.kid is not None else f"unnamed jwt key #{index + 1}"
            loaded = _load_rsa_public_key(key.pem, source)
            if key.kid is None:
                self._unnamed.append(loaded)
            elif key.kid in self._named:
                raise ValueError(f"jwt key id {key.kid!r} is configured twice")
            else:
                self._named[key.kid] = loaded
        self._config = config

    def _candidates(self, kid: str | None) -> list[tuple[str | None, RSAPublicKey]]:
        """Keys to try: the named key for a known kid, else unnamed keys (all keys when there is no kid)."""
        unnamed: list[tuple[str | None, RSAPublicKey]] = [(None, key) for key in self._unnamed]
        if kid is None:
            return [*self._named.items(), *unnamed]
        if kid in self._named:
            return [(kid, self._named[kid])]
        if not unnamed:
            raise _unauthorized("unknown_kid", "token signed with an unknown key id")
        return unnamed

    def verify(self, token: str) -> _Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthorized("bad_token", "bearer token is not a valid JWT") from None
        if header.get("alg") != JWT_ALGORITHM:
            # PyJWT enforces `algorithms` too; this early check only gives the refusal its precise cause.
            raise _unauthorized("bad_algorithm", f"JWT algorithm must be {JWT_ALGORITHM}")
        kid = header.get("kid")  # PyJWT has already refused a non-string kid
        for key_id, key in self._candidates(kid):
            try:
                claims = self._decode(token, key)
            except jwt.InvalidSignatureError:
                continue  # signature is authoritative: try the next rotation key
            except jwt.PyJWTError as exc:
                raise _jwt_refusal(exc) from None
            return self._verified(claims, key_id)
        raise _unauthorized("bad_signature", "JWT signature does not verify with any configured key")

    def _decode(self, token: str, key: RSAPublicKey) -> dict[str, Any]:
        cfg = self._config
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[JWT_ALGORITHM],
            issuer=cfg.jwt_issuer,
            subject=cfg.jwt_subject,
            audience=list(cfg.jwt_accounts),
            leeway=cfg.jwt_leeway_s,
            options={"require": list(_REQUIRED_CLAIMS), "strict_aud": False},
        )
        return claims

    def _verified(self, claims: Mapping[str, Any], key_id: str | None) -> _Verified:
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        # PyJWT guaranteed at least one entry is allowed; report the first, in the token's order.
        account = next(aud for aud in audiences if aud in self._config.jwt_accounts)
        jti = claims.get("jti")
        return _Verified(account=account, subject=claims["sub"], token_id=jti, key_id=key_id)


def _jwt_refusal(exc: jwt.PyJWTError) -> AdmissionError:
    """Map a PyJWT failure to a fixed message (PyJWT's own messages may quote token content)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return _unauthorized("expired", "JWT has expired")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return _unauthorized("not_yet_valid", "JWT is not valid yet (nbf/iat in the future)")
    if isinstance(exc, jwt.InvalidIssuerError):
        return _unauthorized("wrong_issuer", "JWT issuer is not accepted")
    if isinstance(exc, InvalidSubjectError):
        return _unauthorized("wrong_subject", "JWT subject is not accepted")
    if isinstance(exc, jwt.InvalidAudienceError):
        return _unauthorized("wrong_audience", "JWT is not for an account served by this endpoint")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        claim = exc.claim if exc.claim in _REQUIRED_CLAIMS else "required"
        return _unauthorized("missing_claim", f"JWT lacks the {claim!r} claim")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return _unauthorized("bad_algorithm", f"JWT algorithm must be {JWT_ALGORITHM}")
    return _unauthorized("bad_token", "bearer token is not a valid JWT")


# --- the authenticator ---------------------------------------------------------------------------------


class Authenticator:
    """Validates the credentials of one Upgrade request; built once from config at start-up.

    Carrier precedence: an `Authorization` header, when present, is the credential and any `bearer.`
    subprotocol is ignored (neither decoded nor Origin-checked). Browsers cannot set `Authorization` on
    a WebSocket, so such a request is not a browser's and its `Origin` is self-declared and proves
    nothing; checking it would only refuse legitimate clients that send both carriers. The Origin
    allow-list guards the browser carrier, and it is applied whenever that carrier is what is used:
    before the carrier is even decoded, so a foreign page learns nothing about its token's validity.
    """

    def __init__(self, config: AuthConfig) -> None:
        self._config = config
        self._origins = frozenset(_validate_origin(origin) for origin in config.allowed_origins)
        self._verifier: _TokenVerifier | _JwtVerifier | None
        if config.mode == "none":
            self._verifier = None
        elif config.mode == "token":
            self._verifier = _TokenVerifier(config.tokens)
        elif config.mode == "jwt":
            self._verifier = _JwtVerifier(config)
        else:  # a mode string from outside the type checker's sight (e.g. unvalidated config)
            raise ValueError(f"unknown auth mode {config.mode!r}")

    @property
    def mode(self) -> AuthMode:
        return self._config.mode

    def authenticate(
        self, authorization: str | None, offered_subprotocols: Sequence[str], origin: str | None
    ) -> Principal:
        """Admit the request or raise `AdmissionError` (401 credentials, 403 Origin/carrier policy)."""
        if self._verifier is None:
            return Principal(
                mode="none", carrier="none", account=None, subject=None, token_id=None, key_id=None
            )
        carrier: Carrier
        if authorization is not None:
            carrier, token = "authorization", _bearer_from_authorization(authorization)
        elif entries := _carrier_entries(offered_subprotocols):
            self._check_browser_origin(origin)
            carrier, token = "subprotocol", _decode_carrier(entries)
        else:
            raise _unauthorized("missing", "credentials required: Authorization: Bearer <token>")
        verified = self._verifier.verify(token)
        return Principal(
            mode=self._config.mode,
            carrier=carrier,
            account=verified.account,
            subject=verified.subject,
            token_id=verified.token_id,
            key_id=verified.key_id,
        )

    def _check_browser_origin(self, origin: str | None) -> None:
        if not self._origins:
            raise _forbidden("carrier_not_allowed", "browser bearer subprotocol is not enabled here")
        if origin is None or origin not in self._origins:  # "null" can never be configured
            raise _forbidden("bad_origin", "Origin is not allowed")
