"""Example agents (Node.js, Go) as subprocesses that report what they saw as JSON lines on stdout."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

WAIT_S = 8.0  # for any one line of the agent's, or its exit


class AgentProcess:
    """An example agent as a subprocess, and the JSON lines it printed (one per notable step)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.stderr = b""
        self._changed = asyncio.Condition()
        self._readers = [asyncio.create_task(self._read_stdout()), asyncio.create_task(self._read_stderr())]

    @classmethod
    async def start(cls, *argv: str, cwd: Path, prefix: str, amqp_url: str) -> AgentProcess:
        """Agents read the exchange prefix and broker URL from RTVBP_PREFIX and AMQP_URL."""
        env = {**os.environ, "RTVBP_PREFIX": prefix, "AMQP_URL": amqp_url}
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        return cls(process)

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": "non-json", "text": raw.decode(errors="replace")}
            async with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr = await self.process.stderr.read()

    def events(self, name: str, session_id: str | None = None) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines
            if line["event"] == name and (session_id is None or line.get("session_id") == session_id)
        ]

    def transcript(self) -> str:
        return (
            "\n".join(json.dumps(line) for line in self.lines)
            + f"\nstderr: {self.stderr.decode(errors='replace')}"
        )

    async def wait_for(self, name: str, session_id: str | None = None) -> dict[str, Any]:
        def found() -> list[dict[str, Any]]:
            return self.events(name, session_id)

        async def wait() -> dict[str, Any]:
            async with self._changed:
                while not found():
                    if self.process.stdout is not None and self.process.stdout.at_eof():
                        raise AssertionError(f"agent exited before {name!r}")
                    await self._changed.wait()
                return found()[0]

        try:
            return await asyncio.wait_for(wait(), WAIT_S)
        except (TimeoutError, AssertionError) as exc:
            raise AssertionError(
                f"agent never printed {name!r} for {session_id!r} ({exc!r}); it said:\n{self.transcript()}"
            ) from None

    async def terminate(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), WAIT_S)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            await asyncio.gather(*self._readers, return_exceptions=True)
        return code
