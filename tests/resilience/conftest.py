"""Helpers shared by the resilience suite: unique bridges, a healthy bystander call, started calls."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from bridge.service import Service
from bridge.tools.voicepeer import VoicePeer
from tests.conftest import BridgeFactory, ws_url
from tests.support.amqp import Agent, Received

FRAME = 320  # 20 ms of L16/8000/1
# A stall of the shared event loop the bystander must never see. Floods keep the loop busy for a few
# hundred milliseconds on a loaded machine (their own client runs on it too); a blocking bridge is worse.
MAX_STALL_S = 1.0


@pytest.fixture
def instance_id() -> str:
    """Unique per test, so broker-side faults aimed at this bridge's connections hit nobody else's."""
    return f"res-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def service(bridge_factory: BridgeFactory, instance_id: str) -> Service:
    return await bridge_factory(instance_id=instance_id)


async def started_call(service: Service, agent: Agent, session: str, **kwargs: Any) -> VoicePeer:
    voice = VoicePeer(ws_url(service), session_id=session, **kwargs)
    await voice.connect()
    await voice.initialize()
    await agent.wait_event("session.started", session)
    return voice


def speech(index: int, frames: int) -> bytes:
    """Audio whose every frame is different (frame number in each sample), so loss or reordering shows."""
    return b"".join(((index * 7 + n) % 65536).to_bytes(2, "little") * (FRAME // 2) for n in range(frames))


def audio_of(agent: Agent, session: str, direction: str = "in") -> list[Received]:
    return [
        r for r in agent.audio if r.body["session_id"] == session and r.body.get("direction") == direction
    ]


def events_of(agent: Agent, session: str, event_type: str) -> list[dict[str, Any]]:
    return [r.body for r in agent.events if r.body["session_id"] == session and r.body["type"] == event_type]


def assert_gapless(agent: Agent, session: str, sent: bytes) -> None:
    """Every caller byte reached the bus once per seq, in order (duplicates from retries allowed)."""
    chunks = {r.body["seq"]: r.body["audio"] for r in audio_of(agent, session)}
    assert sorted(chunks) == list(range(len(chunks))), "chunk seq has holes"
    assert b"".join(chunks[s] for s in sorted(chunks)) == sent


def assert_event_seq_contiguous(agent: Agent, session: str) -> None:
    seqs = sorted({r.body["seq"] for r in agent.events if r.body["session_id"] == session})
    assert seqs == list(range(len(seqs))), seqs


@dataclass
class Bystander:
    """A healthy call running next to the one under attack. It talks in real time the whole time and,
    at `finish()`, proves it noticed nothing: commands answered promptly, every byte delivered, a
    clean hang-up with zero drops."""

    service: Service
    agent: Agent
    session: str = field(default_factory=lambda: f"bystander-{uuid.uuid4().hex[:6]}")
    voice: VoicePeer | None = None
    sent: bytearray = field(default_factory=bytearray)
    lateness: list[float] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> Bystander:
        self.voice = await started_call(self.service, self.agent, self.session)
        self._task = asyncio.create_task(self._talk())
        return self

    async def _talk(self) -> None:
        assert self.voice is not None
        start = time.monotonic()
        n = 0
        with contextlib.suppress(ConnectionClosed):  # finish() reports a call that died
            while not self._stop.is_set():
                due = start + n * 0.02
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                self.lateness.append(max(0.0, time.monotonic() - due))
                frame = speech(n, 1)
                await self.voice.send_audio(frame)
                self.sent += frame
                n += 1

    async def command_round_trip(self, timeout: float = 3.0) -> float:
        started = time.monotonic()
        reply = await self.agent.command(
            self.session, {"type": "request", "method": "ping", "params": {"t0": 1}}, timeout=timeout
        )
        assert reply is not None and reply["ok"], reply
        return time.monotonic() - started

    async def finish(self, *, lossless: bool = True) -> dict[str, Any]:
        """Stop talking, check the call end to end, hang up; returns the session.ended data."""
        assert self.voice is not None and self._task is not None
        assert await self.command_round_trip() < 2.0
        played = await self.agent.command(self.session, {"type": "audio", "audio": b"\x05\x00" * 800})
        assert played is not None and played["ok"]
        self._stop.set()
        await self._task
        await self.voice.hangup()
        await self.voice.close()
        ended = await self.agent.wait_event("session.ended", self.session, timeout=10)
        data: dict[str, Any] = ended.body["data"]
        assert data["reason"] == "hangup", data
        assert self.voice.played.audio[:1600] == b"\x05\x00" * 800
        # The bridge runs on this loop: a call that stalled it (blocking work, a busy loop over a flood)
        # shows as this call's own 20 ms sends going late. Bounded well above a loaded machine's jitter.
        worst = max(self.lateness, default=0.0)
        assert worst < MAX_STALL_S, f"the event loop stalled {worst * 1000:.0f} ms under this call"
        if lossless:
            counters = data["counters"]
            assert counters["dropped_in_bytes"] == 0 and counters["malformed_frames"] == 0, counters
            assert counters["bytes_in"] == len(self.sent)
            assert "audio.gap" not in self.agent.event_types(self.session)
            await self.agent.wait_for(
                lambda: (
                    sum(len(r.body["audio"]) for r in audio_of(self.agent, self.session)) >= len(self.sent)
                ),
                timeout=10,
            )
            assert_gapless(self.agent, self.session, bytes(self.sent))
        return data

    async def abandon(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self.voice is not None:
            await self.voice.close()


@pytest.fixture
async def bystander(service: Service, agent: Agent) -> Any:
    b = await Bystander(service, agent).start()
    yield b
    await b.abandon()
