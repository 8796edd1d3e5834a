"""Claiming a session's command queue: every way the broker can fail refuses the call with 503."""

from __future__ import annotations

import pytest

from bridge.broker.names import Topology
from bridge.broker.ownership import CommandQueue, LocalOwnership
from bridge.port import CallRefused


class ClosingBroker:
    """A broker client whose consuming connection is gone, or closing under the call."""

    topology = Topology("t")

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def session_channel(self) -> object:
        raise self.error


async def _never(_: object) -> None:
    raise AssertionError("no delivery expected")


@pytest.mark.parametrize("error", [ConnectionError("broker unavailable"), RuntimeError("closed")])
async def test_a_broker_connection_gone_or_closing_refuses_with_503(error: Exception) -> None:
    queue = CommandQueue(ClosingBroker(error), "s-1", "s-1", _never, lambda: None)  # type: ignore[arg-type]
    with pytest.raises(CallRefused) as refused:
        await queue.claim()
    assert refused.value.code == 503 and "broker unavailable" in refused.value.message


def test_local_ownership_refuses_a_key_held_until_released() -> None:
    held = LocalOwnership()
    assert held.claim("k") and not held.claim("k")
    held.release("k")
    assert held.claim("k")
