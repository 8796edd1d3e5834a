"""The bookkeeping of a call's RTVBP requests, both ways: waiters, spans and duration samples.

Application->voice requests wait here for their settlement (the session decides when: answer, error,
timeout or close); voice->application requests the session answered get their span and duration here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from opentelemetry.trace import Span, SpanKind

from bridge.protocol.session import Answered, RequestSettled
from bridge.telemetry import Telemetry


class Requests:
    """Pending outbound requests by id, and the telemetry of every request of one call."""

    __slots__ = ("_init_started", "_telemetry", "_waiters")

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry
        self._waiters: dict[str, asyncio.Future[RequestSettled]] = {}
        self._init_started = 0.0

    async def send(
        self, request_id: str, method: str, parent: Span | None, put_on_the_wire: Callable[[], None]
    ) -> RequestSettled:
        """Register `request_id`, put it on the wire, then wait for its settlement; returns the settlement."""
        telemetry = self._telemetry
        started = time.monotonic()
        span = telemetry.child_span(
            f"rtvbp {method}", parent, SpanKind.CLIENT, {"rpc.system": "rtvbp", "rpc.method": method}
        )
        waiter: asyncio.Future[RequestSettled] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = waiter  # before sending: a settlement can never find no waiter
        put_on_the_wire()
        try:
            settled = await waiter
        except asyncio.CancelledError:
            telemetry.end(span, "cancelled")
            raise
        outcome = "ok" if settled.ok else str(settled.code)
        span.set_attribute("rtvbp.outcome", outcome)
        telemetry.end(span, None if settled.ok else f"{settled.code} {settled.message}")
        telemetry.request_duration.record(
            time.monotonic() - started, {"method": method, "direction": "out", "outcome": outcome}
        )
        return settled

    def settle(self, settled: RequestSettled) -> None:
        """The session settled a request: wake its waiter (if its sender still waits)."""
        waiter = self._waiters.pop(settled.request_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(settled)

    def initialize_started(self, now: float) -> None:
        """session.initialize arrived: its span and duration cover the wait for the bus side."""
        self._init_started = now

    def answered(self, answered: Answered, parent: Span | None) -> None:
        """A voice request we answered: one span and one duration sample."""
        now = time.monotonic()
        began = self._init_started if answered.method == "session.initialize" and self._init_started else now
        outcome = "ok" if answered.code == 0 else str(answered.code)
        span = self._telemetry.child_span(
            f"rtvbp {answered.method}",
            parent,
            SpanKind.SERVER,
            {"rpc.system": "rtvbp", "rpc.method": answered.method, "rtvbp.outcome": outcome},
        )
        self._telemetry.end(span, None if answered.code == 0 else outcome)
        self._telemetry.request_duration.record(
            now - began, {"method": answered.method, "direction": "in", "outcome": outcome}
        )
