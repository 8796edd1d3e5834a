"""Any language can be a consumer: the Node.js example agent follows a real call over RabbitMQ alone.

The bridge runs in-process on the test's own exchange prefix; `examples/node-agent/agent.js` runs as a
subprocess and reports what it saw as JSON lines on stdout. Two simulated calls stream a tone each; the
agent echoes the first second of each back and hangs up once that has been played.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import msgpack
import pytest

from bridge.audio.signal import dominant_frequency, tone
from bridge.service import Service
from bridge.tools.voicepeer import VoicePeer
from tests.conftest import ws_url
from tests.support.agent_process import AgentProcess as NodeAgent

EXPECTED_KEYS = {"node call/1": "h_5c6a9171de5cf50b0b32d74727761af957e503a3", "plain-2": "plain-2"}

AGENT_DIR = Path(__file__).resolve().parents[2] / "examples" / "node-agent"
DEPENDENCIES = ("amqplib", "@msgpack/msgpack")
NPM_CI_TIMEOUT_S = 180
ECHO_MS = 1000
CALL_MS = 1500
SAMPLE_RATE = 8000
FRAME_BYTES = 320  # 20 ms of L16/8000/1


def _ensure_node_modules() -> None:
    """`make test` installs the agent's packages first; a bare pytest run installs them here."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for this test (Node.js >= 20)")
    if all((AGENT_DIR / "node_modules" / name / "package.json").is_file() for name in DEPENDENCIES):
        return
    try:
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=AGENT_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"`npm ci` in {AGENT_DIR.name} took over {NPM_CI_TIMEOUT_S} s; run `make test` or install by hand"
        )
    if done.returncode != 0:
        pytest.fail(
            f"`npm ci --prefix examples/node-agent` failed ({done.returncode}):\n{done.stderr[-2000:]}"
        )


@pytest.fixture
async def node_agent(prefix: str, amqp_url: str) -> AsyncIterator[NodeAgent]:
    _ensure_node_modules()
    agent = await NodeAgent.start(
        "node", "agent.js", "--echo-ms", str(ECHO_MS), cwd=AGENT_DIR, prefix=prefix, amqp_url=amqp_url
    )
    try:
        await agent.wait_for("ready")
        yield agent
    finally:
        with contextlib.suppress(Exception):
            await agent.terminate()


async def publish_junk(amqp_url: str, prefix: str) -> None:
    """Messages a consumer must shrug off: not msgpack, and a session.started without its fields."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        events = await channel.get_exchange(f"{prefix}.events", ensure=False)
        await events.publish(aio_pika.Message(b"\xc1 not msgpack"), routing_key="junk.session.started")
        body = msgpack.packb({"type": "session.started", "session_id": "junk", "seq": 0, "data": {}})
        await events.publish(aio_pika.Message(body), routing_key="junk.session.started")


async def call_with_tone(bridge: Service, node_agent: NodeAgent, session_id: str, freq_hz: int) -> VoicePeer:
    """One call: initialize, wait until the agent follows it, stream 1.5 s of a tone, wait for its hangup."""
    voice = VoicePeer(ws_url(bridge), session_id=session_id)
    await voice.connect()
    await voice.initialize()
    await node_agent.wait_for("session.started", session_id)
    await voice.stream_audio(tone(freq_hz, CALL_MS, SAMPLE_RATE))
    try:
        hangup = await voice.wait_request("call.hangup", timeout=5)
    except TimeoutError:
        pytest.fail(f"the agent never hung up {session_id!r}; it said:\n{node_agent.transcript()}")
    assert hangup.params == {"reason": "completed"}
    assert await voice.wait_closed() == 1000
    return voice


async def test_node_agent_follows_calls_echoes_the_caller_and_hangs_up(
    bridge: Service, node_agent: NodeAgent, prefix: str, amqp_url: str
) -> None:
    await publish_junk(amqp_url, prefix)
    # Two calls at once, one whose id is not a safe routing-key word (the agent must use the key it is given).
    calls = {"node call/1": 440, "plain-2": 1000}
    voices = await asyncio.gather(*(call_with_tone(bridge, node_agent, sid, hz) for sid, hz in calls.items()))
    echo_bytes = ECHO_MS * SAMPLE_RATE * 2 // 1000

    for (session_id, freq_hz), voice in zip(calls.items(), voices, strict=True):
        caller = tone(freq_hz, CALL_MS, SAMPLE_RATE)
        started = await node_agent.wait_for("session.started", session_id)
        assert started["key"] == EXPECTED_KEYS[session_id]  # computed by sha256sum, not by the bridge
        assert started["codec"] == "L16/8000/1" and started["chunk_ms"] == 100

        reply = await node_agent.wait_for("reply", session_id)
        assert reply["method"] == "call.hangup"
        assert reply["ok"] is True and reply["result"] == {}, reply

        sent = await node_agent.wait_for("audio.sent", session_id)
        assert (
            sent["ok"] is True
            and sent["bytes"] == echo_bytes
            and sent["result"]["queued_bytes"] == echo_bytes
        )
        mark = await node_agent.wait_for("mark.reached", session_id)
        assert mark["name"] == "echo-done" and mark["position_ms"] == ECHO_MS

        frames = voice.played.frames
        assert frames and all(len(frame) == FRAME_BYTES for frame in frames)
        played = voice.played.audio
        assert len(played) == echo_bytes
        assert hashlib.sha256(played).hexdigest() == sent["sha256"]
        assert played == caller[:echo_bytes]
        assert dominant_frequency(played, SAMPLE_RATE, list(calls.values())) == freq_hz

        ended = await node_agent.wait_for("session.ended", session_id)
        assert ended["reason"] == "hangup"
        assert ended["caller_bytes"] == len(caller) == ended["expected_bytes"]
        assert ended["caller_chunks"] == CALL_MS // 100  # chunks of the default 100 ms
        assert ended["audio_gaps"] == 0 and ended["audio_duplicates"] == 0
        await voice.close()

    assert await node_agent.terminate() == 0
    assert node_agent.events("stopped") == [{"event": "stopped", "sessions_open": 0}]
    ignored = node_agent.events("ignored")
    assert len(ignored) == 2 and {line["routing_key"] for line in ignored} == {"junk.session.started"}, (
        ignored
    )
    trouble = [line for line in node_agent.lines if line["event"] in ("error", "fatal", "non-json")]
    assert trouble == [], node_agent.transcript()
