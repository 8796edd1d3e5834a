"""Admission of the WebSocket upgrade: modes, carriers, babelforce JWT contract, key loading."""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bridge.auth import (
    AdmissionError,
    AuthConfig,
    Authenticator,
    JwtKey,
    Principal,
    bearer_from_subprotocols,
    load_jwt_keys,
)
from tests.support.jwt_keys import (
    ACCOUNT,
    KID,
    SUBJECT,
    bearer_subprotocol,
    forge_hs256,
    generate_rsa_keypair,
    mint,
)

APP_ORIGIN = "https://app.example.com"
STATIC_TOKEN = "s3cr3t-static-token-0123456789"
OTHER_STATIC_TOKEN = "another-static-token-abcdefghij"


@dataclass(frozen=True)
class KeyPair:
    private: str
    public: str


@pytest.fixture(scope="session")
def old_key() -> KeyPair:
    return KeyPair(*generate_rsa_keypair())


@pytest.fixture(scope="session")
def new_key() -> KeyPair:
    return KeyPair(*generate_rsa_keypair())


@pytest.fixture(scope="session")
def stranger_key() -> KeyPair:
    return KeyPair(*generate_rsa_keypair())


def jwt_auth(*keys: JwtKey, accounts: Sequence[str] = (ACCOUNT,), **overrides: Any) -> Authenticator:
    return Authenticator(AuthConfig(mode="jwt", jwt_keys=keys, jwt_accounts=tuple(accounts), **overrides))


@pytest.fixture()
def jwt_v1(old_key: KeyPair) -> Authenticator:
    """An endpoint that knows the current babelforce key under its kid."""
    return jwt_auth(JwtKey(kid=KID, pem=old_key.public), allowed_origins=(APP_ORIGIN,))


@pytest.fixture()
def token_auth() -> Authenticator:
    return Authenticator(
        AuthConfig(mode="token", tokens=(STATIC_TOKEN, OTHER_STATIC_TOKEN), allowed_origins=(APP_ORIGIN,))
    )


def bearer(token: str) -> str:
    return f"Bearer {token}"


def _secrets(authorization: str | None, offered: Sequence[str]) -> list[str]:
    """Every credential string (and JWT segment) a refusal must not reveal."""
    found: list[str] = []
    if authorization is not None:
        found.append(authorization.removeprefix("Bearer "))
    for entry in offered:
        if entry.startswith("bearer."):
            encoded = entry.removeprefix("bearer.")
            found.append(encoded)
            with contextlib.suppress(ValueError):  # malformed carriers have no decoded form
                found.append(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())
    segments = [segment for secret in found for segment in secret.split(".")]
    return [s for s in [*found, *segments] if len(s) >= 8]


def refuse(
    authenticator: Authenticator,
    authorization: str | None = None,
    offered: Sequence[str] = (),
    origin: str | None = None,
) -> AdmissionError:
    """Assert the request is refused, and that the refusal leaks no credential in any form."""
    with pytest.raises(AdmissionError) as caught:
        authenticator.authenticate(authorization, offered, origin)
    err = caught.value
    rendered = f"{err}\n{err!r}\n{err.args!r}"
    for secret in _secrets(authorization, offered):
        assert secret not in rendered
    # A chained PyJWT/base64 exception would carry token details into logged tracebacks.
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__
    return err


def admit(
    authenticator: Authenticator,
    authorization: str | None = None,
    offered: Sequence[str] = (),
    origin: str | None = None,
) -> Principal:
    return authenticator.authenticate(authorization, offered, origin)


# --- mode none -----------------------------------------------------------------------------------------


def test_mode_none_admits_without_credentials() -> None:
    principal = admit(Authenticator(AuthConfig(mode="none")))
    assert principal == Principal(
        mode="none", carrier="none", account=None, subject=None, token_id=None, key_id=None
    )


def test_mode_none_ignores_any_presented_credentials() -> None:
    authenticator = Authenticator(AuthConfig(mode="none"))
    principal = admit(authenticator, "garbage", ["rtvbp.v1", "bearer.!!!"], origin="null")
    assert principal.mode == "none"
    assert principal.carrier == "none"


# --- mode token ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [STATIC_TOKEN, OTHER_STATIC_TOKEN])
def test_token_mode_admits_every_configured_token(token_auth: Authenticator, token: str) -> None:
    principal = admit(token_auth, bearer(token))
    assert (principal.mode, principal.carrier) == ("token", "authorization")
    assert principal.account is None


def test_token_mode_refuses_unknown_token(token_auth: Authenticator) -> None:
    err = refuse(token_auth, bearer("not-the-static-token-at-all"))
    assert (err.status, err.cause) == (401, "bad_token")


def test_token_mode_refuses_prefix_of_a_configured_token(token_auth: Authenticator) -> None:
    err = refuse(token_auth, bearer(STATIC_TOKEN[:-1]))
    assert err.cause == "bad_token"


def test_token_mode_requires_credentials(token_auth: Authenticator) -> None:
    err = refuse(token_auth, None, ["rtvbp.v1"])
    assert (err.status, err.cause) == (401, "missing")


@pytest.mark.parametrize(
    "authorization",
    [
        f"bearer {STATIC_TOKEN}",  # scheme is case-sensitive
        f"BEARER {STATIC_TOKEN}",
        f"Basic {STATIC_TOKEN}",
        f"Bearer{STATIC_TOKEN}",
        f"Bearer  {STATIC_TOKEN}",  # a second space makes the token start with whitespace
        f"Bearer {STATIC_TOKEN} ",
        f"Bearer {STATIC_TOKEN}\t",
        f"Bearer {STATIC_TOKEN[:10]} {STATIC_TOKEN[10:]}",
        "Bearer ",
        "Bearer",
        "",
        STATIC_TOKEN,
    ],
)
def test_malformed_authorization_header(token_auth: Authenticator, authorization: str) -> None:
    err = refuse(token_auth, authorization)
    assert (err.status, err.cause) == (401, "malformed")


def test_token_comparison_visits_every_token(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = tuple(f"token-number-{i}-xxxxxxxx" for i in range(5))
    authenticator = Authenticator(AuthConfig(mode="token", tokens=tokens))
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        assert isinstance(a, bytes) and isinstance(b, bytes)
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # bridge.auth looks it up per call
    admit(authenticator, bearer(tokens[0]))  # matches the first: must still compare all
    assert len(calls) == len(tokens)


@pytest.mark.parametrize("tokens", [(), ("",), ("has space",), ("ok-token", "tab\there")])
def test_token_mode_rejects_unusable_config(tokens: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="token"):
        Authenticator(AuthConfig(mode="token", tokens=tokens))


def test_config_error_does_not_echo_the_token() -> None:
    with pytest.raises(ValueError) as caught:
        Authenticator(AuthConfig(mode="token", tokens=("good-token", "secret with space")))
    assert "secret with space" not in str(caught.value)


# --- mode jwt: valid tokens ----------------------------------------------------------------------------


def test_jwt_valid_token_yields_babelforce_principal(jwt_v1: Authenticator, old_key: KeyPair) -> None:
    principal = admit(jwt_v1, bearer(mint(old_key.private, jti="token-id-42")))
    assert principal == Principal(
        mode="jwt",
        carrier="authorization",
        account=ACCOUNT,
        subject=SUBJECT,
        token_id="token-id-42",
        key_id=KID,
    )


def test_jwt_aud_array_authorises_the_allowed_entry(old_key: KeyPair) -> None:
    authenticator = jwt_auth(JwtKey(kid=KID, pem=old_key.public), accounts=("acct-7", "acct-2"))
    principal = admit(authenticator, bearer(mint(old_key.private, aud=["acct-x", "acct-2", "acct-7"])))
    assert principal.account == "acct-2"  # the first allowed entry in the token's own order


def test_jwt_within_leeway_is_accepted(jwt_v1: Authenticator, old_key: KeyPair) -> None:
    now = time.time()
    token = mint(old_key.private, exp=int(now) - 10, nbf=int(now) + 10, iat=int(now) + 10)
    assert admit(jwt_v1, bearer(token)).account == ACCOUNT


def test_jwt_leeway_is_configurable(old_key: KeyPair) -> None:
    strict = jwt_auth(JwtKey(kid=KID, pem=old_key.public), jwt_leeway_s=0)
    err = refuse(strict, bearer(mint(old_key.private, exp=int(time.time()) - 10)))
    assert err.cause == "expired"


def test_jwt_issuer_and_subject_are_configurable(old_key: KeyPair) -> None:
    custom = jwt_auth(JwtKey(kid=KID, pem=old_key.public), jwt_issuer="issuer.test", jwt_subject="svc.test")
    assert (
        admit(custom, bearer(mint(old_key.private, iss="issuer.test", sub="svc.test"))).subject == "svc.test"
    )
    assert refuse(custom, bearer(mint(old_key.private))).cause == "wrong_issuer"


# --- mode jwt: refusals --------------------------------------------------------------------------------


def test_jwt_signed_by_another_key_is_refused(jwt_v1: Authenticator, stranger_key: KeyPair) -> None:
    err = refuse(jwt_v1, bearer(mint(stranger_key.private)))
    assert (err.status, err.cause) == (401, "bad_signature")


def test_jwt_with_tampered_payload_is_refused(jwt_v1: Authenticator, old_key: KeyPair) -> None:
    header, _, signature = mint(old_key.private).split(".")
    _, forged_payload, _ = mint(old_key.private, aud="acct-1", sub=SUBJECT, jti="forged-id").split(".")
    err = refuse(jwt_v1, bearer(f"{header}.{forged_payload}.{signature}"))
    assert err.cause == "bad_signature"


def test_jwt_alg_none_is_refused(jwt_v1: Authenticator) -> None:
    token = mint(None, alg="none")
    assert token.endswith(".")  # really unsigned
    err = refuse(jwt_v1, bearer(token))
    assert (err.status, err.cause) == (401, "bad_algorithm")


def test_jwt_hs256_keyed_with_the_public_pem_is_refused(jwt_v1: Authenticator, old_key: KeyPair) -> None:
    err = refuse(jwt_v1, bearer(forge_hs256(old_key.public)))
    assert (err.status, err.cause) == (401, "bad_algorithm")


def test_jwt_other_rsa_algorithm_is_refused(jwt_v1: Authenticator, old_key: KeyPair) -> None:
    err = refuse(jwt_v1, bearer(mint(old_key.private, alg="RS512")))
    assert err.cause == "bad_algorithm"


@pytest.mark.parametrize(
    ("claims", "cause"),
    [
        ({"exp": -3600}, "expired"),
        ({"nbf": 3600}, "not_yet_valid"),
        ({"iat": 3600}, "not_yet_valid"),
    ],
    ids=["expired", "nbf-future", "iat-future"],
)
def test_jwt_time_claims(jwt_v1: Authenticator, old_key: KeyPair, claims: dict[str, Any], cause: str) -> None:
    now = int(time.time())
    token = mint(old_key.private, **{name: now + offset for name, offset in claims.items()})
    err = refuse(jwt_v1, bearer(token))
    assert (err.status, err.cause) == (401, cause)


@pytest.mark.parametrize(
    ("claims", "cause"),
    [
        ({"iss": "auth.babelforce.com.evil"}, "wrong_issuer"),
        ({"iss": "AUTH.BABELFORCE.COM"}, "wrong_issuer"),
        ({"sub": "com.babelforce.svc.other"}, "wrong_subject"),
        ({"aud": "acct-2"}, "wrong_audience"),
        ({"aud": ["acct-2", "acct-3"]}, "wrong_audience"),
        ({"aud": []}, "missing_claim"),
        ({"aud": [1]}, "wrong_audience"),
        ({"exp": "tomorrow"}, "bad_token"),
        ({"jti": 12345}, "bad_token"),
    ],
)
def test_jwt_claim_mismatches(
    jwt_v1: Authenticator, old_key: KeyPair, claims: dict[str, Any], cause: str
) -> None:
    err = refuse(jwt_v1, bearer(mint(old_key.private, **claims)))
    assert (err.status, err.cause) == (401, cause)


@pytest.mark.parametrize("claim", ["iss", "sub", "exp", "aud"])
def test_jwt_missing_required_claim(jwt_v1: Authenticator, old_key: KeyPair, claim: str) -> None:
    err = refuse(jwt_v1, bearer(mint(old_key.private, drop=(claim,))))
    assert (err.status, err.cause) == (401, "missing_claim")
    assert repr(claim) in str(err)


def test_jwt_optional_claims_may_be_absent(jwt_v1: Authenticator, old_key: KeyPair) -> None:
    principal = admit(jwt_v1, bearer(mint(old_key.private, drop=("iat", "jti"))))
    assert principal.token_id is None


def test_jwt_token_for_another_account_is_not_authorisation(old_key: KeyPair) -> None:
    """A genuine babelforce token for account A replayed on an endpoint that serves only B."""
    token = mint(old_key.private, aud="acct-A")
    endpoint_a = jwt_auth(JwtKey(kid=KID, pem=old_key.public), accounts=("acct-A",))
    endpoint_b = jwt_auth(JwtKey(kid=KID, pem=old_key.public), accounts=("acct-B",))
    assert admit(endpoint_a, bearer(token)).account == "acct-A"
    err = refuse(endpoint_b, bearer(token))
    assert (err.status, err.cause) == (401, "wrong_audience")


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt-at-all",
        "aaaaaaaa.bbbbbbbb.cccccccc",
        "eyJhbGciOiJSUzI1NiJ9.%%%%%%%%.cccccccc",
        "a.b",
        "....",
    ],
)
def test_jwt_garbage_token(jwt_v1: Authenticator, token: str) -> None:
    err = refuse(jwt_v1, bearer(token))
    assert (err.status, err.cause) == (401, "bad_token")


def test_jwt_non_string_kid_is_refused(jwt_v1: Authenticator, old_key: KeyPair) -> None:
    _, payload, signature = mint(old_key.private).split(".")  # PyJWT will not mint a non-string kid
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": 7}).encode())
    err = refuse(jwt_v1, bearer(f"{header}.{payload}.{signature}"))
    assert err.cause == "bad_token"


# --- mode jwt: key choice and rotation -----------------------------------------------------------------


def test_jwt_unknown_kid_without_unnamed_keys(jwt_v1: Authenticator, old_key: KeyPair) -> None:
    err = refuse(jwt_v1, bearer(mint(old_key.private, kid="jwt-rsa-2048-v9")))
    assert (err.status, err.cause) == (401, "unknown_kid")


def test_jwt_unknown_kid_falls_back_to_unnamed_keys(old_key: KeyPair, new_key: KeyPair) -> None:
    authenticator = jwt_auth(JwtKey(kid=KID, pem=new_key.public), JwtKey(kid=None, pem=old_key.public))
    principal = admit(authenticator, bearer(mint(old_key.private, kid="jwt-rsa-2048-v9")))
    assert principal.key_id is None  # verified by the unnamed key


def test_jwt_unknown_kid_signed_by_a_named_key_only_is_refused(old_key: KeyPair, new_key: KeyPair) -> None:
    authenticator = jwt_auth(JwtKey(kid=KID, pem=old_key.public), JwtKey(kid=None, pem=new_key.public))
    err = refuse(authenticator, bearer(mint(old_key.private, kid="jwt-rsa-2048-v9")))
    assert err.cause == "bad_signature"  # the named key is not tried for a kid that is not its own


def test_jwt_rotation_accepts_old_and_new_key(old_key: KeyPair, new_key: KeyPair) -> None:
    authenticator = jwt_auth(
        JwtKey(kid="jwt-rsa-2048-v1", pem=old_key.public), JwtKey(kid="jwt-rsa-2048-v2", pem=new_key.public)
    )
    old = admit(authenticator, bearer(mint(old_key.private, kid="jwt-rsa-2048-v1")))
    new = admit(authenticator, bearer(mint(new_key.private, kid="jwt-rsa-2048-v2")))
    assert (old.key_id, new.key_id) == ("jwt-rsa-2048-v1", "jwt-rsa-2048-v2")


def test_jwt_kid_pins_the_key(old_key: KeyPair, new_key: KeyPair) -> None:
    """A named kid selects exactly that key: the signature must verify with it, not with any key."""
    authenticator = jwt_auth(
        JwtKey(kid="jwt-rsa-2048-v1", pem=old_key.public), JwtKey(kid="jwt-rsa-2048-v2", pem=new_key.public)
    )
    err = refuse(authenticator, bearer(mint(new_key.private, kid="jwt-rsa-2048-v1")))
    assert err.cause == "bad_signature"


@pytest.mark.parametrize("signer", ["old", "new"])
def test_jwt_without_kid_tries_every_key(old_key: KeyPair, new_key: KeyPair, signer: str) -> None:
    authenticator = jwt_auth(JwtKey(kid="v1", pem=old_key.public), JwtKey(kid=None, pem=new_key.public))
    key, expected_kid = (old_key, "v1") if signer == "old" else (new_key, None)
    assert admit(authenticator, bearer(mint(key.private, kid=None))).key_id == expected_kid


def test_jwt_without_kid_signed_by_a_stranger(jwt_v1: Authenticator, stranger_key: KeyPair) -> None:
    assert refuse(jwt_v1, bearer(mint(stranger_key.private, kid=None))).cause == "bad_signature"


def test_jwt_claim_errors_are_reported_after_the_right_key_verifies(
    old_key: KeyPair, new_key: KeyPair
) -> None:
    authenticator = jwt_auth(JwtKey(kid=None, pem=new_key.public), JwtKey(kid=None, pem=old_key.public))
    err = refuse(authenticator, bearer(mint(old_key.private, kid=None, exp=int(time.time()) - 3600)))
    assert err.cause == "expired"


# --- mode jwt: configuration ---------------------------------------------------------------------------


def test_jwt_mode_requires_keys() -> None:
    with pytest.raises(ValueError, match="key"):
        Authenticator(AuthConfig(mode="jwt", jwt_accounts=(ACCOUNT,)))


def test_jwt_mode_requires_accounts(old_key: KeyPair) -> None:
    with pytest.raises(ValueError, match="accounts"):
        Authenticator(AuthConfig(mode="jwt", jwt_keys=(JwtKey(kid=None, pem=old_key.public),)))


def test_jwt_mode_rejects_duplicate_kid(old_key: KeyPair, new_key: KeyPair) -> None:
    with pytest.raises(ValueError, match="twice"):
        jwt_auth(JwtKey(kid="v1", pem=old_key.public), JwtKey(kid="v1", pem=new_key.public))


def test_jwt_mode_rejects_private_key_material(old_key: KeyPair) -> None:
    with pytest.raises(ValueError, match="private key") as caught:
        jwt_auth(JwtKey(kid="v1", pem=old_key.private))
    assert _pem_body_lines(old_key.private)[1] not in str(caught.value)


# --- browser carrier -----------------------------------------------------------------------------------


def test_carrier_with_allowed_origin(token_auth: Authenticator) -> None:
    principal = admit(token_auth, None, ["rtvbp.v1", bearer_subprotocol(STATIC_TOKEN)], origin=APP_ORIGIN)
    assert (principal.mode, principal.carrier) == ("token", "subprotocol")


def test_carrier_jwt_is_validated_like_a_header_jwt(jwt_v1: Authenticator, old_key: KeyPair) -> None:
    good = bearer_subprotocol(mint(old_key.private, jti="browser-1"))
    principal = admit(jwt_v1, None, ["rtvbp.v1", good], origin=APP_ORIGIN)
    assert (principal.carrier, principal.account, principal.token_id) == ("subprotocol", ACCOUNT, "browser-1")
    expired = bearer_subprotocol(mint(old_key.private, exp=int(time.time()) - 3600))
    assert refuse(jwt_v1, None, ["rtvbp.v1", expired], origin=APP_ORIGIN).cause == "expired"


def test_carrier_in_a_raw_comma_separated_header_value(token_auth: Authenticator) -> None:
    offered = [f"rtvbp.v1, {bearer_subprotocol(STATIC_TOKEN)}"]
    assert admit(token_auth, None, offered, origin=APP_ORIGIN).carrier == "subprotocol"


def test_carrier_with_wrong_token(token_auth: Authenticator) -> None:
    err = refuse(token_auth, None, [bearer_subprotocol("wrong-token-value-xyz")], origin=APP_ORIGIN)
    assert (err.status, err.cause) == (401, "bad_token")


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "null",
        "https://evil.example",
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com/",
        "HTTPS://APP.EXAMPLE.COM",
    ],
)
def test_carrier_from_a_foreign_origin(token_auth: Authenticator, origin: str | None) -> None:
    err = refuse(token_auth, None, ["rtvbp.v1", bearer_subprotocol(STATIC_TOKEN)], origin=origin)
    assert (err.status, err.cause) == (403, "bad_origin")


def test_carrier_refused_when_no_origin_is_allowed() -> None:
    authenticator = Authenticator(AuthConfig(mode="token", tokens=(STATIC_TOKEN,)))
    err = refuse(authenticator, None, ["rtvbp.v1", bearer_subprotocol(STATIC_TOKEN)], origin=APP_ORIGIN)
    assert (err.status, err.cause) == (403, "carrier_not_allowed")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "entry",
    [
        "bearer.",  # empty
        "bearer.!!!!not-base64!!!!",
        "bearer." + base64.urlsafe_b64encode(b"padded-token-x").decode(),  # has '=' padding
        "bearer." + base64.b64encode(b"\xfb\xff\xbf-token").decode(),  # standard alphabet (+ /)
        "bearer.abcde",  # 5 chars: impossible length
        "bearer.QR",  # non-canonical trailing bits (canonical is "QQ")
        "bearer." + _b64(b"\xff\xfe\xfd-not-utf8"),
        "bearer." + _b64(b"token with spaces"),
    ],
)
def test_carrier_malformed(token_auth: Authenticator, entry: str) -> None:
    err = refuse(token_auth, None, ["rtvbp.v1", entry], origin=APP_ORIGIN)
    assert (err.status, err.cause) == (401, "malformed")


def test_carrier_offered_twice_is_malformed(token_auth: Authenticator) -> None:
    offered = ["rtvbp.v1", bearer_subprotocol(STATIC_TOKEN), bearer_subprotocol(OTHER_STATIC_TOKEN)]
    assert refuse(token_auth, None, offered, origin=APP_ORIGIN).cause == "malformed"


def test_origin_is_checked_before_the_carrier_is_decoded(token_auth: Authenticator) -> None:
    err = refuse(token_auth, None, ["rtvbp.v1", "bearer.!!!!"], origin="https://evil.example")
    assert (err.status, err.cause) == (403, "bad_origin")


def test_authorization_header_wins_over_the_carrier(token_auth: Authenticator) -> None:
    offered = ["rtvbp.v1", bearer_subprotocol("wrong-token-value-xyz")]
    principal = admit(token_auth, bearer(STATIC_TOKEN), offered, origin="https://evil.example")
    assert principal.carrier == "authorization"


def test_bad_authorization_header_does_not_fall_back_to_the_carrier(token_auth: Authenticator) -> None:
    offered = ["rtvbp.v1", bearer_subprotocol(STATIC_TOKEN)]
    err = refuse(token_auth, bearer("wrong-token-value-xyz"), offered, origin=APP_ORIGIN)
    assert err.cause == "bad_token"


@pytest.mark.parametrize("token", ["plain-token", "ünïcødé-tøkén", "a.b-c_d~e"])
def test_bearer_from_subprotocols_round_trip(token: str) -> None:
    assert bearer_from_subprotocols(["rtvbp.v1", bearer_subprotocol(token)]) == token


def test_bearer_from_subprotocols_without_carrier() -> None:
    assert bearer_from_subprotocols([]) is None
    assert bearer_from_subprotocols(["rtvbp.v1", "future.v9"]) is None


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "*",
        "",
        "https://app.example.com/",
        "https://app.example.com/path",
        "app.example.com",
        "ftp://app.example.com",
        "https://App.Example.com",
        "https://user@app.example.com",
    ],
)
def test_unusable_allowed_origin_is_a_config_error(origin: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        Authenticator(AuthConfig(mode="token", tokens=(STATIC_TOKEN,), allowed_origins=(origin,)))


# --- load_jwt_keys -------------------------------------------------------------------------------------


def _pem_body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_load_jwt_keys_from_settings_and_a_mounted_secret(
    tmp_path: Path, old_key: KeyPair, new_key: KeyPair, stranger_key: KeyPair
) -> None:
    (tmp_path / "jwt-rsa-2048-v2.pem").write_text(new_key.public)
    (tmp_path / "jwt-rsa-2048-v1.pem").write_text(old_key.public)
    (tmp_path / "README.txt").write_text("not a key")
    (tmp_path / ".hidden.pem").write_text("ignored")
    data = tmp_path / "..data"  # what kubelet creates next to the projected key files
    data.mkdir()
    (data / "ignored.pem").write_text("ignored")

    keys = load_jwt_keys([stranger_key.public], tmp_path)

    assert keys == (
        JwtKey(kid=None, pem=stranger_key.public),
        JwtKey(kid="jwt-rsa-2048-v1", pem=old_key.public),
        JwtKey(kid="jwt-rsa-2048-v2", pem=new_key.public),
    )
    authenticator = jwt_auth(*keys)
    assert (
        admit(authenticator, bearer(mint(new_key.private, kid="jwt-rsa-2048-v2"))).key_id == "jwt-rsa-2048-v2"
    )


def test_load_jwt_keys_without_dir(old_key: KeyPair) -> None:
    assert load_jwt_keys([old_key.public], None) == (JwtKey(kid=None, pem=old_key.public),)
    assert load_jwt_keys([], None) == ()


def _ec_public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _truncated(pem: str) -> str:
    """The PEM armour intact around a DER body cut in half (a bad copy-paste)."""
    lines = pem.splitlines()
    return "\n".join([*lines[: len(lines) // 2], lines[-1]])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda k: k.private, "private key"),
        (lambda k: "just some text", "not a PEM"),
        (lambda k: _truncated(k.public), "cannot be parsed"),
        (lambda k: _ec_public_pem(), "not an RSA key"),
        (lambda k: generate_rsa_keypair(1024)[1], "too small"),
        (lambda k: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PUBLIC KEY"),
    ],
    ids=["private", "not-pem", "corrupt", "ec", "rsa-1024", "certificate"],
)
def test_load_jwt_keys_rejects_unusable_files(
    tmp_path: Path, old_key: KeyPair, content: Callable[[KeyPair], str], message: str
) -> None:
    pem = content(old_key)
    (tmp_path / "jwt-rsa-2048-v1.pem").write_text(pem)
    with pytest.raises(ValueError, match=message) as caught:
        load_jwt_keys([], tmp_path)
    text = str(caught.value)
    assert "jwt-rsa-2048-v1.pem" in text
    assert not any(line in text for line in _pem_body_lines(pem) if len(line) >= 8)


def test_load_jwt_keys_rejects_unusable_setting(old_key: KeyPair) -> None:
    with pytest.raises(ValueError, match=r"jwt_public_keys\[1\].*private key") as caught:
        load_jwt_keys([old_key.public, old_key.private], None)
    assert _pem_body_lines(old_key.private)[1] not in str(caught.value)


def test_load_jwt_keys_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "v1.pem").mkdir()  # reading a directory fails even as root, unlike chmod 000
    with pytest.raises(ValueError, match=r"v1\.pem: cannot read"):
        load_jwt_keys([], tmp_path)


def test_load_jwt_keys_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "v1.pem").write_bytes(b"\xff\xfe-----BEGIN PUBLIC KEY-----")
    with pytest.raises(ValueError, match=r"v1\.pem: cannot read"):
        load_jwt_keys([], tmp_path)


def test_load_jwt_keys_missing_or_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable directory"):
        load_jwt_keys([], tmp_path / "absent")
    with pytest.raises(ValueError, match=r"no <kid>\.pem files"):
        load_jwt_keys([], tmp_path)
