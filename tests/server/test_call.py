"""Call's construction: only public parameters, fresh state per call, the port's surface unchanged."""

from __future__ import annotations

import dataclasses
import inspect
import time

import pytest

from bridge.port import CallControl, CallStats
from bridge.protocol.session import SessionConfig, State
from bridge.server.call import Call
from tests.server.pair import socket_pair
from tests.server.test_callbacks import RecordingApp

PUBLIC_PARAMETERS = [
    "ws",
    "config",
    "app",
    "playout_lead_ms",
    "playout_max_ms",
    "telemetry",
    "span",
    "on_violation",
]


def test_the_constructor_takes_only_public_parameters() -> None:
    assert [f.name for f in dataclasses.fields(Call) if f.init] == PUBLIC_PARAMETERS
    assert not [name for name in inspect.signature(Call).parameters if name.startswith("_")]


async def test_every_call_starts_with_its_own_fresh_state() -> None:
    async with socket_pair() as (server, _client):
        before = time.monotonic()
        first = Call(server, SessionConfig(), RecordingApp())
        second = Call(server, SessionConfig(), RecordingApp())
        with pytest.raises(TypeError):
            Call(server, SessionConfig(), RecordingApp(), stats=CallStats())  # type: ignore[call-arg]
        for call in (first, second):
            assert call.stats == CallStats() and call.playout is None
            assert call.session.state is State.AWAIT_INIT and before <= call.started_at <= time.monotonic()
        assert first.stats is not second.stats and first.session is not second.session


@pytest.mark.parametrize(
    "name", ["enqueue_audio", "add_mark", "clear", "request", "send_event", "end", "mark_ending", "summary"]
)
def test_call_keeps_the_call_control_surface(name: str) -> None:
    assert inspect.signature(getattr(Call, name)) == inspect.signature(getattr(CallControl, name))
    assert inspect.iscoroutinefunction(getattr(Call, name)) == inspect.iscoroutinefunction(
        getattr(CallControl, name)
    )
