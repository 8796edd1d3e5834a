"""Admission abuse on the live server: floods, slow handshakes, mangled carriers, replayed tokens, and
credentials that must never reach a log line.

Every JWT failure mode (alg none, HS256 keyed with the public key, expired, not yet valid, wrong
iss/sub/aud, unknown kid, garbage) is covered by tests/unit/test_auth.py and, live, by
tests/integration/test_handshake.py, as is a missing or foreign Origin for the browser carrier.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.service import Service
from bridge.tools.voicepeer import VoicePeer
from tests.conftest import BridgeFactory, ws_url
from tests.resilience.rabbit import until
from tests.support.amqp import Agent
from tests.support.jwt_keys import bearer_subprotocol, generate_rsa_keypair, mint
from tests.support.ws import status_of

PRIVATE, PUBLIC = generate_rsa_keypair()
ORIGIN = "https://agent.example.com"
TOKEN = "tok-9f1c2e7d5b3a4c6e8d0f"


async def test_a_connection_flood_beyond_the_session_limit_is_refused_and_the_admitted_calls_work(
    bridge_factory: BridgeFactory, agent: Agent, instance_id: str
) -> None:
    service = await bridge_factory(instance_id=instance_id, max_sessions=3)
    url = ws_url(service)

    async def attempt() -> ClientConnection | int:
        try:
            ws = await connect(url, open_timeout=5, subprotocols=["rtvbp.v1"])  # type: ignore[list-item]
        except InvalidStatus as exc:
            return exc.response.status_code
        try:  # admission can also lose the race after the upgrade: 1013 "try again later"
            await asyncio.wait_for(ws.recv(), 0.3)
        except TimeoutError:
            return ws
        except ConnectionClosed:
            assert ws.close_code == 1013
            return 1013
        raise AssertionError("the bridge spoke first")

    outcomes = await asyncio.gather(*(attempt() for _ in range(12)))
    admitted = [o for o in outcomes if isinstance(o, ClientConnection)]
    refused = [o for o in outcomes if not isinstance(o, ClientConnection)]
    assert len(admitted) == 3 and len(refused) == 9
    assert set(refused) <= {503, 1013}
    assert service.server.admission.refused["capacity"] == 9
    for ws in admitted:
        await ws.close()
    # the slots come back, and a real call works
    await until(lambda: not service.server.calls, 5, "the closed sockets to leave")
    voice = VoicePeer(url, session_id="after-flood")
    await voice.connect()
    await voice.initialize()
    await agent.wait_event("session.started", "after-flood")
    await voice.hangup()
    await voice.close()


@pytest.mark.slow
async def test_idle_sockets_holding_slots_are_closed_at_the_initialize_deadline(
    bridge_factory: BridgeFactory, agent: Agent, instance_id: str
) -> None:
    service = await bridge_factory(instance_id=instance_id, max_sessions=2, init_timeout_s=1.0)
    url = ws_url(service)
    squatters = [await connect(url) for _ in range(2)]
    assert await status_of(url) == 503
    for ws in squatters:
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1008 and "initialize" in (ws.close_reason or "")
    await until(lambda: not service.server.calls, 5, "the idle sockets to leave")
    voice = VoicePeer(url, session_id="after-idle")
    await voice.connect()
    await voice.initialize()
    await voice.hangup()
    await voice.close()
    await agent.wait_event("session.ended", "after-idle")
    # an idle socket never started a session: nothing reached the bus for it
    assert {r.body["session_id"] for r in agent.events} == {"after-idle"}


def _slow_handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")  # ...and never finish
    return sock


def _closed_by_peer_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""  # EOF: the server gave up on us
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.close()


@pytest.mark.slow
async def test_slow_handshakes_time_out_and_never_block_real_calls(
    bridge_factory: BridgeFactory, agent: Agent, instance_id: str
) -> None:
    service = await bridge_factory(instance_id=instance_id, handshake_timeout_s=1.0, max_sessions=5)
    slow = [await asyncio.to_thread(_slow_handshake, service.server.port) for _ in range(20)]
    started = time.monotonic()
    voice = VoicePeer(ws_url(service), session_id="beside-slowloris")  # admitted while they dawdle
    await voice.connect()
    await voice.initialize()
    assert time.monotonic() - started < 1.0
    closed = await asyncio.gather(*(asyncio.to_thread(_closed_by_peer_within, s, 4.0) for s in slow))
    assert all(closed)
    assert len(service.server.calls) == 1  # half-open handshakes never counted as sessions
    await voice.hangup()
    ended = await agent.wait_event("session.ended", "beside-slowloris")
    assert ended.body["data"]["reason"] == "hangup"
    await voice.close()


# ---- carriers and credentials ---------------------------------------------------------------------------


@pytest.fixture
async def jwt_service(bridge_factory: BridgeFactory, instance_id: str) -> Service:
    return await bridge_factory(
        instance_id=instance_id,
        auth_mode="jwt",
        jwt_public_keys=PUBLIC,
        jwt_accounts="acct-1",
        allowed_origins=ORIGIN,
    )


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def malformed_carriers(token: str) -> list[tuple[str, str, int, str | None]]:
    """(case, Sec-WebSocket-Protocol value, expected status, expected refusal cause)."""
    std = base64.b64encode(token.encode()).decode()  # standard alphabet and padding: a common client bug
    return [
        ("empty carrier", "rtvbp.v1, bearer.", 401, "malformed"),
        ("standard base64 with padding", f"rtvbp.v1, bearer.{std}", 400, "bad_subprotocol_header"),
        ("plus sign", f"rtvbp.v1, bearer.{_b64(token)[:10]}+{_b64(token)[10:]}", 401, "malformed"),
        (
            "two carriers",
            f"rtvbp.v1, {bearer_subprotocol(token)}, {bearer_subprotocol(token)}",
            401,
            "malformed",
        ),
        (
            "not UTF-8",
            "rtvbp.v1, bearer." + base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
            401,
            "malformed",
        ),
        ("whitespace inside", f"rtvbp.v1, bearer.{_b64(token[:20] + ' ' + token[20:])}", 401, "malformed"),
        ("one char of base64", "rtvbp.v1, bearer.A", 401, "malformed"),
    ]


async def test_malformed_bearer_subprotocols_are_refused_without_leaking_the_token(
    jwt_service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, websockets' header dumps included
    token = mint(PRIVATE, aud="acct-1")
    for case, header, status, cause in malformed_carriers(token):
        before = dict(jwt_service.server.admission.refused)
        got = await status_of(
            ws_url(jwt_service), origin=ORIGIN, additional_headers={"Sec-WebSocket-Protocol": header}
        )
        assert got == status, case
        after = jwt_service.server.admission.refused
        assert cause is not None and after.get(cause, 0) == before.get(cause, 0) + 1, (case, after)
    _assert_no_secret(bridge_log(caplog), token)


@pytest.mark.parametrize("origin", [None, "null", "https://agent.example.com/", "HTTPS://AGENT.EXAMPLE.COM"])
async def test_browser_carrier_from_a_foreign_origin_is_403_before_the_token_is_read(
    jwt_service: Service, origin: str | None
) -> None:
    carrier = bearer_subprotocol("not even a token")  # the Origin check comes first: no oracle for tokens
    assert await status_of(ws_url(jwt_service), subprotocols=["rtvbp.v1", carrier], origin=origin) == 403
    assert jwt_service.server.admission.refused == {"bad_origin": 1}


async def test_a_token_replayed_against_another_accounts_bridge_is_refused(
    jwt_service: Service, bridge_factory: BridgeFactory
) -> None:
    other = await bridge_factory(
        instance_id="res-other-account", auth_mode="jwt", jwt_public_keys=PUBLIC, jwt_accounts="acct-2"
    )
    token = mint(PRIVATE, aud="acct-1")
    headers = {"Authorization": f"Bearer {token}"}
    async with VoicePeer(ws_url(jwt_service), headers=headers, session_id="acct-1-call") as voice:
        await voice.initialize()  # the rightful account's bridge takes it
    assert await status_of(ws_url(other), additional_headers=headers) == 401
    assert other.server.admission.refused == {"wrong_audience": 1}
    # and a token whose audience lists both accounts is admitted as the first one the bridge serves
    both = mint(PRIVATE, aud=["acct-9", "acct-2"])
    assert await status_of(ws_url(other), additional_headers={"Authorization": f"Bearer {both}"}) == 101


async def test_credentials_never_reach_the_logs(
    bridge_factory: BridgeFactory, agent: Agent, instance_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service = await bridge_factory(
        instance_id=instance_id,
        auth_mode="token",
        auth_tokens=f"{TOKEN},second-tok-77aa",
        allowed_origins=ORIGIN,
    )
    url = ws_url(service)
    # admitted by header and by the browser carrier, then refused in every carrier
    async with VoicePeer(url, headers={"Authorization": f"Bearer {TOKEN}"}, session_id="logged") as voice:
        await voice.initialize()
        await voice.hangup()
    carrier = bearer_subprotocol("second-tok-77aa")
    async with connect(url, subprotocols=["rtvbp.v1", carrier], origin=ORIGIN) as ws:  # type: ignore[list-item,arg-type]
        assert ws.subprotocol == "rtvbp.v1"
    wrong = "wrong-tok-5e5e5e5e5e"
    assert await status_of(url, additional_headers={"Authorization": f"Bearer {wrong}"}) == 401
    assert await status_of(url, additional_headers={"Authorization": f"bearer {wrong}"}) == 401
    assert await status_of(url, subprotocols=["rtvbp.v1", bearer_subprotocol(wrong)], origin=ORIGIN) == 401
    std = base64.b64encode(f"{wrong}??>>".encode()).decode()
    assert (
        await status_of(
            url, origin=ORIGIN, additional_headers={"Sec-WebSocket-Protocol": f"rtvbp.v1, bearer.{std}"}
        )
        == 400
    )
    await agent.wait_event("session.ended", "logged")
    text = bridge_log(caplog)
    assert "Authorization" in text  # the handshakes were logged at DEBUG...
    for secret in (TOKEN, "second-tok-77aa", wrong):
        _assert_no_secret(text, secret)  # ...without the credentials


@pytest.mark.slow
async def test_the_broker_password_never_reaches_the_logs(
    bridge_factory: BridgeFactory, amqp_url: str, instance_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "amqp-pw-3c9d1f0b7a"
    wrong = amqp_url.replace("guest:guest@", f"guest:{password}@")
    assert wrong != amqp_url
    service = await bridge_factory(instance_id=instance_id, amqp_url=wrong)  # waits out a few retries
    assert not service.broker.ready()
    text = bridge_log(caplog)
    assert "broker not reachable" in text and "ACCESS_REFUSED" in text
    assert password not in text


def bridge_log(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the bridge process logged (the test's own websockets client logs its headers too)."""
    handler = caplog.handler
    return "\n".join(handler.format(r) for r in caplog.records if not r.name.startswith("websockets.client"))


def _assert_no_secret(text: str, secret: str) -> None:
    assert secret not in text
    for encoded in (_b64(secret), base64.b64encode(secret.encode()).decode()):
        for piece in (encoded[i : i + 12] for i in range(0, max(1, len(encoded) - 11), 6)):
            assert piece not in text, f"a piece of a credential ({piece!r}) was logged"
