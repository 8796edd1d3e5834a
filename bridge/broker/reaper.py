"""The lost-call reaper: ends, for their consumers, the calls of a replica that vanished without draining.

Runs in every replica; the ledger queue's single active consumer makes exactly one of them decide (see
`lost_calls` for the mechanism). Everything is on the consuming connection, whose lifetime is the one
that matters: it also holds this replica's session command queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiormq
import msgpack
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection

from bridge.broker import messages
from bridge.broker.ledger import LEDGER_QUEUE_ARGS
from bridge.broker.lost_calls import BadRecord, LedgerRecord, LostCall, LostCallTracker
from bridge.broker.names import Topology
from bridge.broker.publisher import ConfirmingPublisher, Outgoing
from bridge.compat.aiormq import open_raw_channel
from bridge.telemetry import Telemetry

log = logging.getLogger("bridge.reaper")

CHECK_INTERVAL_S = 0.5
CONFIRM_TIMEOUT_S = 10.0


def bridge_lost_body(call: LostCall[Any]) -> dict[str, Any]:
    """The terminal event of a lost call. No `seq` and no counters: only the lost replica knew them."""
    return {
        "type": "session.ended",
        "session_id": call.session_id,
        "ts": time.time_ns() // 1_000_000,
        "data": {
            "reason": "bridge_lost",
            "detail": f"bridge instance {call.instance} was lost without ending the call",
            "instance": call.instance,
        },
    }


class LostCallReaper:
    def __init__(self, topology: Topology, presence: str, publisher: ConfirmingPublisher) -> None:
        self.topology = topology
        self.presence = presence
        self._publisher = publisher
        self._tracker: LostCallTracker[AbstractIncomingMessage] = LostCallTracker(presence)
        self._conn: AbstractRobustConnection | None = None
        self._checks: aiormq.abc.AbstractChannel | None = None
        self._delivering: aiormq.abc.AbstractChannel | None = None  # the channel the tracked records came on
        self._task: asyncio.Task[None] | None = None
        self.calls_reaped = 0
        self.checked_at = 0.0  # monotonic time of the last completed round of presence checks

    async def start(self, conn: AbstractRobustConnection) -> None:
        """Declare this replica's presence, read the ledger (when active) and watch the others."""
        self._conn = conn
        channel: AbstractRobustChannel = await conn.channel()
        # Robust declarations: restored with the connection, so the presence comes back after a blip.
        await channel.declare_queue(self.presence, exclusive=True, auto_delete=True)
        ledger = await channel.declare_queue(self.topology.ledger, durable=True, arguments=LEDGER_QUEUE_ARGS)
        await ledger.consume(self._on_record)
        self._task = asyncio.create_task(self._watch(), name="lost-call-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _current(self, delivering: aiormq.abc.AbstractChannel | None) -> bool:
        """Whether the tracked records are still held; if their channel is gone, start afresh.

        What a reader held unacked goes back to the queue when its channel drops, and is redelivered on
        the restored channel (to this reader or to another): nothing tracked from before may be acted on.
        """
        if delivering is not self._delivering or (delivering is not None and delivering.is_closed):
            self._tracker.reset()
            self._delivering = delivering if delivering is not None and not delivering.is_closed else None
            return False
        return True

    async def _on_record(self, message: AbstractIncomingMessage) -> None:
        self._current(message.channel)
        try:
            record = LedgerRecord.from_wire(msgpack.unpackb(message.body, raw=False))
        except (BadRecord, ValueError, msgpack.UnpackException) as exc:
            log.warning("dropping a malformed ledger record: %s", exc)
            await message.ack()
            return
        for settled in self._tracker.record(record, message):
            with contextlib.suppress(Exception):  # a delivery of a closed channel is redelivered anyway
                await settled.ack()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            try:
                if not self._current(self._delivering):
                    continue
                for presence in self._tracker.to_check():
                    present = await self._present(presence)
                    for call in self._tracker.observe(presence, present, time.monotonic()):
                        await self._end(call)
                self.checked_at = time.monotonic()
            except Exception as exc:  # broker away: the robust connection comes back, so do we
                log.debug("lost-call check skipped (%s)", type(exc).__name__)

    async def _present(self, queue: str) -> bool:
        """Whether a replica's presence queue exists; it is exclusive, so another owner means 'locked'."""
        channel = await self._check_channel()
        try:
            await channel.queue_declare(queue, passive=True)
            return True
        except aiormq.exceptions.ChannelLockedResource:
            return True
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            if channel.is_closed:  # a failed passive declare closes the channel
                self._checks = None

    async def _check_channel(self) -> aiormq.abc.AbstractChannel:
        # A plain aiormq channel: an aio-pika robust one would try to "restore" itself after each 404.
        if self._checks is None or self._checks.is_closed:
            assert self._conn is not None
            self._checks = await open_raw_channel(self._conn)
        return self._checks

    async def _end(self, call: LostCall[AbstractIncomingMessage]) -> None:
        log.warning("bridge %s was lost: ending its call %s for consumers", call.instance, call.session_id)
        props = messages.properties(
            body_type="session.ended",
            headers={"session_id": call.session_id, **Telemetry.reply_headers(None)},
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        body = messages.pack(bridge_lost_body(call))
        self._publisher.submit(Outgoing(self.topology.events, f"{call.key}.session.ended", body, props, done))
        try:
            await asyncio.wait_for(done, CONFIRM_TIMEOUT_S)
        except Exception as exc:
            # Back into the ledger: redelivered to the active reader, which tries again.
            log.warning("session.ended bridge_lost for %s not confirmed (%s)", call.session_id, exc)
            with contextlib.suppress(Exception):
                await call.tag.nack(requeue=True)
            return
        self.calls_reaped += 1
        with contextlib.suppress(Exception):
            await call.tag.ack()
