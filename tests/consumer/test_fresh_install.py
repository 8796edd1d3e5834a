"""The library as a user gets it: `pip install ./clients/python` into a fresh venv (no bridge in it), then
`python examples/echo_agent.py` in a group of two, against the live bridge with ten simulated calls."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import venv
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bridge.service import Service
from bridge.tools.voicepeer import VoicePeer
from tests.conftest import ws_url
from tests.support.polling import until

REPO = Path(__file__).resolve().parents[2]
FRAME = 320


@pytest.fixture(scope="session")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("fresh-venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(REPO / "clients" / "python")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # Only the library and its two dependencies: the server is not there to lean on.
    probe = "import importlib.util as u; print(*(bool(u.find_spec(m)) for m in ('bridge', 'rtvbp_consumer')))"
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True, cwd=home)
    assert found.stdout.split() == ["False", "True"]
    return python


@contextlib.contextmanager
def echo_agent(python: Path, amqp_url: str, prefix: str, group: str, log: Path) -> Iterator[Path]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                str(python),
                str(REPO / "examples" / "echo_agent.py"),
                "--amqp-url",
                amqp_url,
                "--prefix",
                prefix,
                "--delay-ms",
                "0",
                "--group",
                group,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        process.terminate()
        process.wait(10)


def voice_audio(call: int, frames: int) -> bytes:
    """Every frame different and unique to its call."""
    return b"".join(((call * 1000 + n) % 65536).to_bytes(2, "little") * (FRAME // 2) for n in range(frames))


@pytest.fixture
async def agents(fresh_python: Path, amqp_url: str, prefix: str, tmp_path: Path) -> AsyncIterator[list[Path]]:
    with (
        echo_agent(fresh_python, amqp_url, prefix, "echo", tmp_path / "a.log") as a,
        echo_agent(fresh_python, amqp_url, prefix, "echo", tmp_path / "b.log") as b,
    ):
        try:
            await until(lambda: all("ready" in log.read_text() for log in (a, b)), 20, "both agents ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{a.read_text()}\n{b.read_text()}") from None
        yield [a, b]


async def test_installed_echo_agents_in_a_group_echo_each_of_ten_calls_exactly_once(
    bridge: Service, agents: list[Path]
) -> None:
    async def call(index: int) -> tuple[bytes, bytes]:
        voice = VoicePeer(ws_url(bridge), session_id=f"fresh-{index}")
        await voice.connect()
        await voice.initialize()
        sent = voice_audio(index, 40)  # 0.8 s
        await voice.stream_audio(sent)
        await until(lambda: len(voice.played.audio) >= len(sent), 10, f"the echo of call {index}")
        await voice.hangup()
        await voice.close()
        return sent, voice.played.audio

    results = await asyncio.gather(*(call(i) for i in range(10)))
    for sent, played in results:
        assert (
            played[: len(sent)] == sent
        )  # every caller byte, in order, once (a second echo would interleave)
    logs = [log.read_text() for log in agents]
    for index in range(10):
        assert sum(f"call fresh-{index} started" in log for log in logs) == 1, index
    assert all("started" in log for log in logs), "one agent got no share of the calls"
