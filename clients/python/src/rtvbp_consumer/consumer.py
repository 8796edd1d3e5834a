"""The Consumer: one broker connection that follows calls and hands each one out as a `Call`.

Topology (docs/consumers.md §2), on a robust aio-pika connection that reconnects and re-declares it:

- alone (no `group`): one private queue bound to every event (`#`) and all caller audio (`*.in`)
  before any call starts. A call's `session.started` is confirmed by the broker before the voice may
  send audio, and both arrive through this same queue, so the first chunk is never missed.
- `group="name"`: the group's shared queue `<prefix>.group.<name>` on `*.session.started`, from which
  RabbitMQ hands each call to exactly one member (acked only once the member has bound the call's
  audio). Every member's private queue takes all events (`#`, a few per call), so none of a call's
  events can slip by before its member knows the call; events of calls not (yet) known are held
  briefly for that. Caller audio, the heavy part, is bound per call (`<key>.in`): a chunk published
  before that binding existed (very unlikely: the first one comes `chunk_ms` after the call starts)
  is reported as an `AudioGap`, never hidden.

Replay (when the bridge runs with BRIDGE_REPLAY=true, docs/reliability.md "Replay"): a call whose live
messages show that its beginning went by unseen (the first chunk or event we get is past the next `seq`:
a group member that took the call late, a gap after a reconnect) has that part read from the stream
`<prefix>.replay` (replay.py), and `calls(include_live=True)` also hands out the calls already in
progress when the consumer started, found in the same stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine
from types import TracebackType
from typing import Any

import aio_pika
import msgpack
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelLockedResource, ChannelNotFoundEntity

from rtvbp_consumer.call import Call
from rtvbp_consumer.commands import Commands
from rtvbp_consumer.errors import CommandError, ReplayUnavailable
from rtvbp_consumer.events import parse_event
from rtvbp_consumer.replay import CATCH_UP_TIMEOUT_S as REPLAY_CATCH_UP_TIMEOUT_S
from rtvbp_consumer.replay import LiveCallsScan, read_call_beginning, replay_stream_exists

log = logging.getLogger("rtvbp_consumer")
GROUP_QUEUE_EXPIRES_MS = 60_000  # a group's queue outlives member restarts, not the whole group
EARLY_CALLS_HELD = 1000  # group mode: calls whose events arrived before (or without) their session.started


class Consumer:
    """Follow the bridge's calls on RabbitMQ.

    `async with Consumer(url, prefix="rtvbp") as consumer: async for call in consumer.calls(): ...`
    """

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        prefix: str = "rtvbp",
        *,
        group: str | None = None,
        end_grace_s: float = 2.0,
        reconnect_interval_s: float = 1.0,
        name: str | None = None,
        replay: bool | None = None,
        lookback_s: float = 600.0,
    ) -> None:
        """`replay`: read calls' missed beginnings from the replay stream; None (default) when the
        deployment has it, True requires it (`start` raises ReplayUnavailable), False never.
        `lookback_s`: how far back `calls(include_live=True)` looks for calls in progress."""
        self.url, self.prefix, self.group = url, prefix, group
        self.end_grace_s = end_grace_s
        self.reconnect_interval_s = reconnect_interval_s
        self.tag = uuid.uuid4().hex[:12]
        self.name = name or f"rtvbp-consumer {self.tag}"  # the AMQP connection name (rabbitmqctl shows it)
        self._calls: dict[str, Call] = {}
        self._new_calls: asyncio.Queue[Call | None] = asyncio.Queue()
        self._connection: AbstractRobustConnection | None = None
        self._queue: AbstractQueue | None = None
        self._events_exchange: AbstractExchange | None = None
        self._audio_exchange: AbstractExchange | None = None
        self._commands: Commands | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._call_channel: AbstractRobustChannel | None = None
        self._early: dict[str, list[dict[str, Any]]] = {}  # group mode: session key -> its events so far
        self.replay, self.lookback_s = replay, lookback_s
        self.replay_available = False  # known after start()
        self._scan: LiveCallsScan | None = None  # calls(include_live=True): the look for calls in progress
        self._scan_task: asyncio.Task[None] | None = None  # (waits as long as no call sends anything)

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self.url,
            reconnect_interval=self.reconnect_interval_s,
            client_properties={"connection_name": self.name},
        )
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        if self.replay is not False:
            self.replay_available = await replay_stream_exists(self._connection, self.prefix)
            if self.replay and not self.replay_available:
                await self._connection.close()
                raise ReplayUnavailable(f"no replay stream {self.prefix}.replay (is BRIDGE_REPLAY=true?)")
        channel = await self._connection.channel(publisher_confirms=False)
        self._commands = Commands(channel, self.prefix, self.tag)
        await self._commands.start()
        await self._declare_call_queue(await self._connection.channel())
        if self.group is not None:
            await self._join_group(await self._connection.channel())

    async def _declare_call_queue(self, channel: AbstractRobustChannel) -> None:
        topic = aio_pika.ExchangeType.TOPIC  # declared exactly as the bridge does: idempotent
        self._events_exchange = await channel.declare_exchange(f"{self.prefix}.events", topic, durable=True)
        self._audio_exchange = await channel.declare_exchange(f"{self.prefix}.audio", topic, durable=True)
        # Named by us, not the server, so a reconnect can declare it again under the same name.
        self._queue = await channel.declare_queue(
            f"{self.prefix}.consumer.{self.tag}", exclusive=True, auto_delete=True
        )
        await self._queue.bind(self._events_exchange, "#")
        if self.group is None:
            await self._queue.bind(self._audio_exchange, "*.in")
        # The hot path (ten chunks a second per call) consumes on the bare aiormq channel: no aio-pika
        # message object and one task per delivery instead of two. The robust channel re-declares and
        # re-binds the queue after a reconnect; consuming again is ours to do, once it has re-opened.
        self._call_channel = channel
        channel.reopen_callbacks.add(lambda *_: self._spawn(self._consume_again()))
        await self._consume_calls()

    async def _consume_again(self) -> None:
        try:
            await self._consume_calls()
        except Exception:  # the channel closed again: its next re-open calls us again
            log.warning("could not consume calls after the channel re-opened", exc_info=True)

    async def _consume_calls(self) -> None:
        assert self._queue is not None and self._call_channel is not None
        channel = await self._call_channel.get_underlay_channel()
        await channel.basic_consume(self._queue.name, self._on_delivery, no_ack=True)

    async def _join_group(self, channel: AbstractChannel) -> None:
        await channel.set_qos(prefetch_count=16)
        assert self._events_exchange is not None
        queue = await channel.declare_queue(
            f"{self.prefix}.group.{self.group}", arguments={"x-expires": GROUP_QUEUE_EXPIRES_MS}
        )
        await queue.bind(self._events_exchange, "*.session.started")
        await queue.consume(self._on_group_call)

    async def close(self) -> None:
        """Stop following calls: their iterators end (`ended()` has reason "unknown"), commands fail."""
        if self._scan_task is not None:
            self._scan_task.cancel()
        if self._commands is not None:
            self._commands.fail_all(CommandError(503, "consumer closed"))
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        for call in list(self._calls.values()):
            call.lost("the consumer was closed")
        self._new_calls.put_nowait(None)

    async def calls(self, include_live: bool = False) -> AsyncIterator[Call]:
        """Every call that starts from now on (this member's share of them, with a `group`).

        `include_live=True` (needs the replay stream, and no `group`): also the calls already in
        progress (started within `lookback_s`), each from its first chunk."""
        if include_live:
            self._look_for_live_calls()
        while (call := await self._new_calls.get()) is not None:
            yield call
        self._new_calls.put_nowait(None)

    @property
    def following(self) -> int:
        """How many calls this consumer is following now."""
        return len(self._calls)

    # -- message routing ------------------------------------------------------------------------------

    def _look_for_live_calls(self) -> None:
        if self.group is not None:
            raise ValueError("calls(include_live=True) is for a consumer without a group")
        if not self.replay_available:
            log.warning("no replay stream %s.replay: calls in progress cannot be found", self.prefix)
            return
        if self._scan is None and self._connection is not None:
            self._scan = LiveCallsScan(self._connection, self.prefix, self.lookback_s)
            self._scan_task = self._spawn(self._open_live_calls(self._scan))

    async def _open_live_calls(self, scan: LiveCallsScan) -> None:
        try:
            for key, started in (await scan.run()).items():
                call = self._open_call(key, started)
                if call is not None:  # (None: its session.started came live too, it is followed already)
                    call.begin_replay()
        except Exception:
            log.warning("could not look for the calls in progress", exc_info=True)
        finally:
            scan.done = True  # one look per consumer: live deliveries need not be noted any more

    async def _on_delivery(self, message: DeliveredMessage) -> None:
        try:
            body = msgpack.unpackb(message.body)
            if self._scan is not None and not self._scan.done:
                self._scan.seen_live(message.routing_key or "", body)
            key = (message.routing_key or "").partition(".")[0]
            kind = body["type"]
            if kind == "audio":
                call = self._calls.get(key)
                if call is not None:  # else: a call that started before us, or not ours
                    call.feed_chunk(int(body["seq"]), int(body["ts"]), body["audio"])
            elif kind == "session.started":
                if self.group is None:
                    self._open_call(key, body)
            else:
                call = self._calls.get(key)
                if call is not None:
                    call.feed_event(parse_event(body))
                elif self.group is not None:
                    self._hold_early(key, kind, body)
        except Exception:  # one odd message must never stop the consumer or another call
            log.warning("ignored a message on %s", message.routing_key, exc_info=True)

    def _hold_early(self, key: str, kind: str, body: dict[str, Any]) -> None:
        """Group mode: keep events of unknown calls until the group's queue hands the call out (to us or
        to another member); forget them when the call ends."""
        if kind == "session.ended":
            self._early.pop(key, None)
            return
        self._early.setdefault(key, []).append(body)
        while len(self._early) > EARLY_CALLS_HELD:
            self._early.pop(next(iter(self._early)))

    async def _on_group_call(self, message: AbstractIncomingMessage) -> None:
        """Our share of the group's calls: bind the call's messages, then take it off the shared queue."""
        try:
            body = msgpack.unpackb(message.body)
            key = (message.routing_key or "").partition(".")[0]
            if body.get("type") != "session.started":
                raise ValueError(f"not a session.started: {body.get('type')!r}")
            call = self._open_call(key, body)
            if call is not None:
                assert self._queue is not None
                for early in self._early.pop(key, []):
                    try:
                        call.feed_event(parse_event(early))
                    except Exception:
                        log.warning("ignored an event of call %s", key, exc_info=True)
                await self._queue.bind(f"{self.prefix}.audio", f"{key}.in")
        except Exception:
            log.warning("ignored a call on %s", message.routing_key, exc_info=True)
        with contextlib.suppress(Exception):  # after a reconnect the delivery tag is void: it is redelivered
            await message.ack()

    def _open_call(self, key: str, body: dict[str, Any]) -> Call | None:
        if not key or key in self._calls:
            return None  # a duplicate session.started
        assert self._commands is not None
        data = body["data"]
        call = Call(
            data,
            str(body["session_id"]),
            key,
            self._commands,
            self.end_grace_s,
            self._finished,
            started_ms=int(body.get("ts") or 0),
            on_late=self._replay_call if self.replay_available else None,
        )
        self._calls[key] = call
        self._new_calls.put_nowait(call)
        return call

    def _replay_call(self, call: Call) -> None:
        self._spawn(self._read_beginning(call))

    async def _read_beginning(self, call: Call) -> None:
        try:
            assert self._connection is not None
            await read_call_beginning(self._connection, self.prefix, call)
        except Exception:
            log.warning("could not replay call %s: what it misses is reported as gaps", call.session_id)
        finally:
            call.end_replay()

    def _finished(self, call: Call) -> None:
        self._calls.pop(call.session_key, None)
        if self.group is not None:
            self._spawn(self._unbind(call.session_key))

    def _on_reconnect(self, *_: Any) -> None:
        self._spawn(self._forget_gone_calls())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _forget_gone_calls(self) -> None:
        """After a reconnect: a call whose session.ended went by while we were away would never end.
        Its ownership queue (`<prefix>.session.<key>`, exclusive to the bridge) tells: gone means ended.
        With the replay stream, its end (and the audio before it) is read from there first."""
        for call in list(self._calls.values()):
            try:
                if not await self._owned(call.session_key):
                    log.info("call %s ended while the consumer was disconnected", call.session_id)
                    self._spawn(self._end_gone_call(call))
            except Exception:
                log.warning("could not check call %s after a reconnect", call.session_id, exc_info=True)

    async def _end_gone_call(self, call: Call) -> None:
        # Twice: a replay already under way (a hole the reconnect left) may stop at live audio short
        # of the end; the next one, with nothing held, reads until the call's session.ended.
        for _ in range(2 if self.replay_available else 0):
            call.begin_replay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.replay_done.wait(), REPLAY_CATCH_UP_TIMEOUT_S + 1)
            if call.is_ended:
                return
        call.lost("ended while the consumer was disconnected")

    async def _owned(self, key: str) -> bool:
        assert self._connection is not None and self._connection.transport is not None
        # A bare channel: a passive declare that fails closes it, and a robust one would re-open itself.
        channel = await self._connection.transport.connection.channel()
        try:
            await channel.queue_declare(f"{self.prefix}.session.{key}", passive=True)
            return True  # not exclusive to someone else: odd, but someone holds it
        except ChannelLockedResource:
            return True  # exclusive to the bridge that owns the call
        except ChannelNotFoundEntity:
            return False
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _unbind(self, key: str) -> None:
        assert self._queue is not None
        with contextlib.suppress(Exception):
            await self._queue.unbind(f"{self.prefix}.audio", f"{key}.in")
