"""Admission and negotiation against the live server, with a real WebSocket client."""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect

from bridge.tools.voicepeer import VoicePeer
from tests.conftest import BridgeFactory, ws_url
from tests.support.jwt_keys import (
    ACCOUNT,
    ISSUER,
    KID,
    bearer_subprotocol,
    forge_hs256,
    generate_rsa_keypair,
    mint,
)
from tests.support.polling import until
from tests.support.ws import status_of

PRIVATE, PUBLIC = generate_rsa_keypair()
OTHER_PRIVATE, _ = generate_rsa_keypair()
ORIGIN = "https://agent.example.com"


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_headerless_client_gets_rtvbp_v1_and_no_subprotocol_header(bridge) -> None:
    async with connect(ws_url(bridge)) as ws:
        assert ws.subprotocol is None
        assert ws.response is not None and "Sec-WebSocket-Protocol" not in ws.response.headers


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (["rtvbp.v1"], "rtvbp.v1"),
        (["future.v9", "rtvbp.v1"], "rtvbp.v1"),
        (["rtvbp.webrtc.v1", "rtvbp.demo.v1", "rtvbp.v1"], "rtvbp.v1"),
    ],
)
async def test_offered_profiles_select_rtvbp_v1(bridge, offered: list[str], expected: str) -> None:
    async with connect(ws_url(bridge), subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == expected


@pytest.mark.parametrize("offered", [["rtvbp.unsupported.v999"], ["rtvbp.demo.v1"], ["rtvbp.webrtc.v1"]])
async def test_unsupported_profiles_are_refused_with_400(bridge, offered: list[str]) -> None:
    assert await status_of(ws_url(bridge), subprotocols=offered) == 400


async def test_empty_subprotocol_token_is_refused(bridge) -> None:
    status = await status_of(ws_url(bridge), additional_headers={"Sec-WebSocket-Protocol": ""})
    assert status == 400


async def test_unknown_path_is_404(bridge) -> None:
    assert await status_of(ws_url(bridge, "/elsewhere")) == 404


async def test_health_and_readiness_endpoints(bridge) -> None:
    base = f"http://127.0.0.1:{bridge.server.port}"
    assert await asyncio.to_thread(http_get, base + "/healthz") == (200, "ok\n")
    assert (await asyncio.to_thread(http_get, base + "/readyz"))[0] == 200
    bridge.server.draining = True
    status, body = await asyncio.to_thread(http_get, base + "/readyz")
    assert status == 503 and "draining" in body
    assert await status_of(ws_url(bridge)) == 503
    bridge.server.draining = False


# ---- static bearer tokens -------------------------------------------------------------------------------


async def test_token_mode(bridge_factory: BridgeFactory) -> None:
    service = await bridge_factory(auth_mode="token", auth_tokens="s3cret-one,s3cret-two")
    url = ws_url(service)
    assert await status_of(url, additional_headers={"Authorization": "Bearer s3cret-two"}) == 101
    assert await status_of(url) == 401
    assert await status_of(url, additional_headers={"Authorization": "Bearer wrong"}) == 401
    assert await status_of(url, additional_headers={"Authorization": "bearer s3cret-one"}) == 401
    assert service.server.admission.refused.get("missing") == 1


# ---- JWT (babelforce Cloud) --------------------------------------------------------------------------------


@pytest.fixture
async def jwt_bridge(bridge_factory: BridgeFactory):  # type: ignore[no-untyped-def]
    return await bridge_factory(
        auth_mode="jwt", jwt_public_keys=PUBLIC, jwt_accounts=ACCOUNT, allowed_origins=ORIGIN
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_jwt_valid_token_is_admitted_and_a_call_runs(jwt_bridge) -> None:
    voice = VoicePeer(ws_url(jwt_bridge), headers=bearer(mint(PRIVATE)), session_id="jwt-ok")
    async with voice:
        codec = await voice.initialize()
        assert codec["id"] == "L16/8000/1"


@pytest.mark.parametrize(
    ("case", "token_factory"),
    [
        ("wrong signature", lambda: mint(OTHER_PRIVATE)),
        ("alg none", lambda: mint(None, alg="none")),
        ("HS256 keyed with the public key", lambda: forge_hs256(PUBLIC)),
        ("expired", lambda: mint(PRIVATE, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
        ("not yet valid", lambda: mint(PRIVATE, nbf=int(time.time()) + 3600)),
        ("wrong issuer", lambda: mint(PRIVATE, iss="evil.example.com")),
        ("wrong subject", lambda: mint(PRIVATE, sub="someone.else")),
        ("other account", lambda: mint(PRIVATE, aud="acct-2")),
        ("missing exp", lambda: mint(PRIVATE, drop=("exp",))),
        ("garbage", lambda: "not.a.jwt"),
    ],
)
async def test_jwt_failures_are_401_before_upgrade(jwt_bridge, case: str, token_factory, caplog) -> None:  # type: ignore[no-untyped-def]
    token = token_factory()
    caplog.set_level(logging.DEBUG, logger="bridge")
    assert await status_of(ws_url(jwt_bridge), additional_headers=bearer(token)) == 401, case
    assert "Authorization" in caplog.text  # the handshake was logged at DEBUG...
    for part in token.split("."):
        if len(part) >= 8:
            assert part not in caplog.text  # ...without any part of the credential


async def test_browser_carrier_requires_an_allowed_origin(jwt_bridge) -> None:
    carrier = bearer_subprotocol(mint(PRIVATE, kid=KID, iss=ISSUER))
    url = ws_url(jwt_bridge)
    async with connect(url, subprotocols=["rtvbp.v1", carrier], origin=ORIGIN) as ws:  # type: ignore[list-item,arg-type]
        assert ws.subprotocol == "rtvbp.v1"  # the credential is never echoed
    assert await status_of(url, subprotocols=["rtvbp.v1", carrier], origin="https://evil.example.com") == 403
    assert await status_of(url, subprotocols=["rtvbp.v1", carrier]) == 403


# ---- limits ---------------------------------------------------------------------------------------------


async def test_sessions_beyond_the_limit_get_503(bridge_factory: BridgeFactory) -> None:
    service = await bridge_factory(max_sessions=2)
    url = ws_url(service)
    async with connect(url), connect(url):
        await until(lambda: len(service.server.calls) == 2, 5, "both calls to be admitted")
        assert await status_of(url) == 503
    assert service.server.admission.refused["capacity"] == 1


def test_auth_none_refuses_a_public_address() -> None:
    from bridge.config import SettingsError, load_settings

    with pytest.raises(SettingsError, match="BRIDGE_AUTH_ALLOW_INSECURE"):
        load_settings(host="0.0.0.0", auth_mode="none")
    assert load_settings(host="0.0.0.0", auth_mode="none", auth_allow_insecure=True).host == "0.0.0.0"


async def test_rotated_keys_in_the_keys_dir_are_picked_up_without_restart(
    bridge_factory: BridgeFactory, tmp_path, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    import bridge.service

    monkeypatch.setattr(bridge.service, "KEY_RELOAD_INTERVAL_S", 0.1)
    new_private, new_public = generate_rsa_keypair()
    (tmp_path / "jwt-rsa-2048-v1.pem").write_text(PUBLIC)
    service = await bridge_factory(auth_mode="jwt", jwt_keys_dir=str(tmp_path), jwt_accounts=ACCOUNT)
    url = ws_url(service)
    assert await status_of(url, additional_headers=bearer(mint(PRIVATE, kid="jwt-rsa-2048-v1"))) == 101
    rotated = mint(new_private, kid="jwt-rsa-2048-v2")
    assert await status_of(url, additional_headers=bearer(rotated)) == 401
    caplog.set_level(logging.INFO, logger="bridge.service")
    (tmp_path / "jwt-rsa-2048-v2.pem").write_text(new_public)
    await until(lambda: "reloaded JWT public keys" in caplog.text, 5, "the key reload")
    assert await status_of(url, additional_headers=bearer(rotated)) == 101
    assert await status_of(url, additional_headers=bearer(mint(PRIVATE, kid="jwt-rsa-2048-v1"))) == 101
    (tmp_path / "broken.pem").write_text("not a key")  # a bad file never locks everyone out
    await until(lambda: "JWT key reload failed" in caplog.text, 5, "the reload to try the bad file")
    assert await status_of(url, additional_headers=bearer(rotated)) == 101
