"""The library's exceptions: a command the bridge (or the wait for it) refused, a replay stream missing."""

from __future__ import annotations


class CommandError(Exception):
    """A command failed: the bridge's or the voice's error code and message.

    Codes follow docs/amqp-contract.md (400 bad command, 404 no bridge owns the call, 409 the call is
    ending, 413 too much audio, 504 no answer in time, ...). The library adds two of its own meanings:
    503 when the broker could not take the command, 504 when no reply came within the timeout.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class ReplayUnavailable(Exception):
    """`Consumer(replay=True)` and the deployment has no replay stream (the bridge runs without
    BRIDGE_REPLAY=true), or it could not be read."""
