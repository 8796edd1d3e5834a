"""The Go example agent, built from Debian's packages only, follows a real call over RabbitMQ.

`examples/go-agent` decodes every body into the structs generated from schemas/ (contract_types.go,
which must be exactly what scripts/gen_go_types.py makes of schemas/ today). It is built here with
GO111MODULE=off against /usr/share/gocode (golang-go, golang-github-rabbitmq-amqp091-go-dev,
golang-github-vmihailenco-msgpack.v5-dev; `scripts/ensure-go.sh` installs them, `make test` runs it),
then run against the in-process bridge: a simulated call streams a tone and presses a digit; the agent
echoes the caller's audio and answers the digit with a `ping` request whose typed reply it prints.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.audio.signal import dominant_frequency, tone
from bridge.broker.names import session_key
from bridge.schemas import SCHEMA_DIR
from bridge.service import Service
from bridge.tools.voicepeer import VoicePeer
from tests.conftest import ws_url
from tests.support.agent_process import AgentProcess
from tests.support.polling import until

REPO = Path(__file__).resolve().parents[2]
AGENT_DIR = REPO / "examples" / "go-agent"
DEBIAN_GOCODE = Path("/usr/share/gocode")
GO_LIBRARIES = ("github.com/rabbitmq/amqp091-go", "github.com/vmihailenco/msgpack/v5")
CALL_MS = 1000
SAMPLE_RATE = 8000
FRAME_BYTES = 320


def _go() -> str:
    go = shutil.which("go")
    missing = [lib for lib in GO_LIBRARIES if not (DEBIAN_GOCODE / "src" / lib).is_dir()]
    if go is None or missing:
        pytest.skip(
            f"Go not installed (missing: {missing or 'go'}): scripts/ensure-go.sh installs golang-go,"
            " golang-github-rabbitmq-amqp091-go-dev and golang-github-vmihailenco-msgpack.v5-dev"
        )
    return go


def _go_env(tmp: Path) -> dict[str, str]:
    """GOPATH mode against Debian's packaged sources: no module proxy, no network."""
    return {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{tmp / 'gopath'}{os.pathsep}{DEBIAN_GOCODE}",
        "GOCACHE": str(REPO / ".tools" / "go-build-cache"),
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }


def test_committed_go_types_are_generated_from_the_schemas(tmp_path: Path) -> None:
    _go()
    fresh = tmp_path / "contract_types.go"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_go_types.py"), str(SCHEMA_DIR), str(fresh)],
        check=True,
        timeout=60,
    )
    assert fresh.read_text(encoding="utf-8") == (AGENT_DIR / "contract_types.go").read_text(
        encoding="utf-8"
    ), "examples/go-agent/contract_types.go is stale: run `make contract-types`"


@pytest.fixture(scope="module")
def go_agent_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = _go()
    tmp = tmp_path_factory.mktemp("go-agent")
    binary = tmp / "go-agent"
    for step in (["build", "-o", str(binary), "."], ["vet", "."]):
        done = subprocess.run(
            [go, *step],
            cwd=AGENT_DIR,
            env=_go_env(tmp),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"go {step[0]} failed:\n{done.stdout}{done.stderr}"
    return binary


@pytest.fixture
async def go_agent(go_agent_binary: Path, prefix: str, amqp_url: str) -> AsyncIterator[AgentProcess]:
    agent = await AgentProcess.start(str(go_agent_binary), cwd=AGENT_DIR, prefix=prefix, amqp_url=amqp_url)
    try:
        await agent.wait_for("ready")
        yield agent
    finally:
        with contextlib.suppress(Exception):
            await agent.terminate()


async def test_go_agent_echoes_the_caller_and_answers_a_digit_with_a_typed_reply(
    bridge: Service, go_agent: AgentProcess
) -> None:
    session_id = "go call/1"  # not a safe routing-key word: the agent must use the key it is given
    caller = tone(440, CALL_MS, SAMPLE_RATE)
    voice = VoicePeer(ws_url(bridge), session_id=session_id)
    await voice.connect()
    await voice.initialize()
    started = await go_agent.wait_for("session.started", session_id)
    assert started["key"] == session_key(session_id)
    assert (started["codec"], started["sample_rate"], started["chunk_ms"]) == ("L16/8000/1", 8000, 100)

    await voice.stream_audio(caller)
    await voice.dtmf("7")
    digit = await go_agent.wait_for("dtmf", session_id)
    assert digit["digit"] == "7"
    reply = await go_agent.wait_for("reply", session_id)
    assert reply["method"] == "ping" and reply["ok"] is True, reply
    result = reply["result"]
    assert set(result) == {"t0", "t1", "t2", "owd"} and result["t2"] - result["t0"] == result["owd"]
    ping = await voice.wait_request("ping")
    assert ping.params["data"] == {"digit": "7"} and ping.params["t0"] == result["t0"]
    # replies carry the call's W3C trace context like every other message (they used to have none)
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", reply["traceparent"]), reply

    # every caller chunk comes back, byte for byte, in order
    await until(lambda: len(voice.played.audio) >= len(caller), 5, "the echo to be played")
    played = voice.played.audio
    assert all(len(frame) == FRAME_BYTES for frame in voice.played.frames)
    assert played == caller
    assert dominant_frequency(played, SAMPLE_RATE, [440, 1000]) == 440
    echoed = go_agent.events("echoed", session_id)
    assert len(echoed) == CALL_MS // 100 and all(line["ok"] for line in echoed)
    assert sum(line["queued_bytes"] for line in echoed) == len(caller)

    await voice.hangup()
    assert await voice.wait_closed() == 1000
    ended = await go_agent.wait_for("session.ended", session_id)
    assert ended["reason"] == "hangup"
    assert ended["caller_bytes"] == ended["echoed_bytes"] == ended["bytes_in"] == len(caller)
    assert ended["chunks_in"] == CALL_MS // 100 and ended["dropped_in_bytes"] == 0
    assert ended["bytes_out"] == len(caller)
    await voice.close()

    assert await go_agent.terminate() == 0
    trouble = [
        line for line in go_agent.lines if line["event"] in ("error", "fatal", "non-json", "audio.gap")
    ]
    assert trouble == [], go_agent.transcript()
