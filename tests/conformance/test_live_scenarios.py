"""The upstream scenarios and negotiation vectors, played against the live bridge over a real WebSocket.

The test plays the voice. Steps the application originates are triggered the way a real consumer would:
by publishing the matching command on RabbitMQ; the bridge's reply on AMQP is checked too. Results the
bridge legitimately computes differ from the scripted ones only where protocol.md §6.3 says they may:
the initialize codec (a real codec from the offer, never the shape-pin `null`) and ping timestamps.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bridge.protocol.envelope import ErrorObject, Event, Request, Response, decode_frame, encode_frame
from bridge.protocol.negotiation import SUPPORTED_PROFILES
from tests.conftest import ws_url
from tests.support.amqp import Agent
from tests.support.vectors import catalog_dir, missing_reason, vectors_root

MISSING = missing_reason()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

PREAMBLE_OFFER = {"id": "L16/8000/1", "name": "L16", "sample_rate": 8000, "bit_depth": 16, "channels": 1}


def _scenario_cases() -> list[Any]:
    if MISSING is not None:
        return []
    cases = []
    for path in sorted((catalog_dir() / "scenarios").glob("*.json")):
        doc = json.loads(path.read_text())
        for case in doc["cases"]:
            cases.append(pytest.param(case, id=f"{path.stem}:{case['name']}"))
    return cases


def _negotiation() -> dict[str, Any]:
    if MISSING is not None:
        return {"valid": [], "invalid": []}
    path: Path = vectors_root() / "conformance" / "profiles" / "negotiation.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


async def next_text(ws: ClientConnection, timeout: float = 3.0) -> str:
    while True:
        message = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(message, str):
            return message


def init_params(session_id: str) -> dict[str, Any]:
    return {
        "application": {"id": "app-1"},
        "call": {"id": "call-1", "session_id": session_id, "from": "+12025550100", "to": "+12025550101"},
        "audio_codec_offerings": [PREAMBLE_OFFER],
        "metadata": None,
    }


# Operations only the voice sends; the application role never does (docs/consumers.md).
VOICE_ONLY_METHODS = frozenset({"session.initialize", "session.terminate"})


class ScenarioPlayer:
    def __init__(self, ws: ClientConnection, agent: Agent, session_id: str) -> None:
        self.ws = ws
        self.agent = agent
        self.session_id = session_id
        self.bound: dict[str, str] = {}
        self.offered: list[dict[str, Any]] = []
        self.commands: dict[str, asyncio.Task[dict[str, Any] | None]] = {}
        self.refused: set[str] = set()

    async def initialize(self, request_id: str, params: dict[str, Any]) -> None:
        self.offered = params["audio_codec_offerings"]
        await self.ws.send(encode_frame(Request(request_id, "session.initialize", params)))

    async def play(self, steps: list[dict[str, Any]]) -> None:
        for step in steps:
            if step["from"] == "voice":
                await self.voice_step(step)
            else:
                await self.application_step(step)

    async def voice_step(self, step: dict[str, Any]) -> None:
        kind = step["kind"]
        if kind == "request":
            peer_id = f"peer-{step['id'].lstrip('$')}"
            self.bound[step["id"]] = peer_id
            if step["method"] == "session.initialize":
                await self.initialize(peer_id, step["params"])
            else:
                await self.ws.send(encode_frame(Request(peer_id, step["method"], step["params"])))
        elif kind == "event":
            await self.ws.send(
                encode_frame(Event(f"peer-{step['id'].lstrip('$')}", step["event"], step["data"]))
            )
            event = await self.agent.wait_event(step["event"], self.session_id)
            assert event.body["data"] == step["data"]  # voice payloads pass through unchanged
        else:  # a voice response to an application request: answer it, then check the consumer's reply
            if step["response"] in self.refused:
                return  # the bridge refused that request itself: there is nothing for the voice to answer
            request_id = self.bound[step["response"]]
            if "error" in step:
                err = step["error"]
                await self.ws.send(
                    encode_frame(Response(request_id, error=ErrorObject(err["code"], err["message"])))
                )
            else:
                await self.ws.send(encode_frame(Response(request_id, result=step["result"])))
            task = self.commands.pop(step["response"], None)
            if task is not None:
                reply = await asyncio.wait_for(task, 5)
                assert reply is not None
                if "error" in step:
                    assert reply["ok"] is False and reply["error"] == step["error"]
                else:
                    assert reply["ok"] is True and reply["result"] == step["result"]

    async def application_step(self, step: dict[str, Any]) -> None:
        kind = step["kind"]
        if kind == "response":
            frame = decode_frame(await next_text(self.ws))
            assert isinstance(frame, Response), frame
            assert frame.response == self.bound[step["response"]]
            assert frame.error is None
            expected = step["result"]
            if "audio_codec" in expected:
                # the shape pin says null; a real bridge returns one offered codec verbatim
                assert frame.result["audio_codec"] in self.offered
            elif "t1" in expected:
                for key in ("t0", "data"):
                    assert frame.result.get(key) == expected.get(key)
                assert all(isinstance(frame.result[k], int) and frame.result[k] for k in ("t1", "t2"))
                assert frame.result["owd"] == frame.result["t2"] - frame.result["t0"]
            else:
                assert frame.result == expected
            return
        if kind == "event":
            body = {"type": "event", "event": step["event"], "data": step["data"]}
        else:
            body = {"type": "request", "method": step["method"], "params": step["params"]}
        if kind == "request" and step["method"] in VOICE_ONLY_METHODS:
            # The vector checks that a voice rejects the reverse direction. The bridge never sends it:
            # a consumer asking for it gets 400 from the bridge, and nothing reaches the voice.
            reply = await self.agent.command(self.session_id, body)
            assert reply is not None and reply["ok"] is False and reply["error"]["code"] == 400, reply
            with pytest.raises(TimeoutError):
                await next_text(self.ws, timeout=0.3)
            self.refused.add(step["id"])
            return
        self.commands[step["id"]] = asyncio.create_task(self.agent.command(self.session_id, body))
        frame = decode_frame(await next_text(self.ws))
        if kind == "event":
            assert isinstance(frame, Event) and (frame.event, frame.data) == (step["event"], step["data"])
            reply = await asyncio.wait_for(self.commands.pop(step["id"]), 5)
            assert reply is not None and reply["ok"]
        else:
            assert isinstance(frame, Request) and (frame.method, frame.params) == (
                step["method"],
                step["params"],
            )
            self.bound[step["id"]] = frame.id


@pytest.mark.parametrize("case", _scenario_cases())
async def test_scenario_against_the_live_bridge(bridge, agent: Agent, case: dict[str, Any]) -> None:
    steps = case["steps"]
    first = steps[0]
    session_id = (
        first["params"]["call"]["session_id"]
        if first.get("method") == "session.initialize"
        else f"scn-{case['name']}"
    )
    async with connect(ws_url(bridge), subprotocols=["rtvbp.v1"]) as ws:  # type: ignore[list-item]
        player = ScenarioPlayer(ws, agent, session_id)
        if first.get("method") != "session.initialize":
            await player.initialize("preamble-init", init_params(session_id))
            frame = decode_frame(await next_text(ws))
            assert isinstance(frame, Response) and frame.result["audio_codec"] == PREAMBLE_OFFER
            await ws.send(
                encode_frame(Event("preamble-updated", "session.updated", {"audio_codec": PREAMBLE_OFFER}))
            )
            await agent.wait_event("session.updated", session_id)
        await player.play(steps)
        last = steps[-1]
        if last.get("response") == "$terminate" or last.get("response") == "$hangup":
            await asyncio.wait_for(ws.wait_closed(), 3)
            assert ws.close_code == 1000
    await agent.wait_event("session.ended", session_id)


@pytest.mark.parametrize("vector", _negotiation()["valid"], ids=lambda v: v["name"])
async def test_negotiation_valid_vectors_live(bridge, vector: dict[str, Any]) -> None:
    offered = vector["offered"]
    kwargs: dict[str, Any] = {"subprotocols": offered} if offered else {}
    if vector["effectiveProfile"] not in SUPPORTED_PROFILES:
        # the vector assumes a server with every profile; an rtvbp.v1-only bridge must refuse it
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(bridge), **kwargs):
                pass
        assert refused.value.response.status_code == 400
        return
    async with connect(ws_url(bridge), **kwargs) as ws:
        assert ws.subprotocol == vector["selectedToken"]
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Protocol") == vector["selectedToken"]


@pytest.mark.parametrize("vector", _negotiation()["invalid"], ids=lambda v: v["name"])
async def test_negotiation_invalid_vectors_live(bridge, vector: dict[str, Any]) -> None:
    header = ", ".join(vector["offered"])
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(bridge), additional_headers={"Sec-WebSocket-Protocol": header}):
            pass
    assert refused.value.response.status_code == 400
