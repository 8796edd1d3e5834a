"""ConfirmingPublisher against a fake channel: order, the confirm window, retries, withdrawal, recovery.

The fake stands where aio-pika's robust channel and the aiormq channel under it stand; every confirm is
a future the test settles, so each case (a confirm out of order, a nack, a dead channel) happens exactly
when the test says. The live broker paths are covered by tests/integration and tests/resilience.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge.broker import publisher as publisher_module
from bridge.broker.publisher import ConfirmingPublisher, Outgoing
from bridge.compat.aiormq import Properties
from tests.support.polling import until


@dataclass
class Publish:
    body: bytes
    exchange: str
    routing_key: str
    options: dict[str, Any]
    confirm: asyncio.Future[None]

    def ack(self) -> None:
        self.confirm.set_result(None)

    def nack(self) -> None:
        self.confirm.set_exception(ConnectionError("channel closed by the broker"))


@dataclass
class FakeUnderlay:
    """The aiormq channel: records each publish when its frame would go out; confirms are the test's."""

    is_closed: bool = False
    publishes: list[Publish] = field(default_factory=list)

    async def basic_publish(
        self, body: bytes, *, exchange: str, routing_key: str, properties: Any, **options: Any
    ) -> None:
        confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.publishes.append(Publish(body, exchange, routing_key, options, confirm))
        await confirm


@dataclass
class FakeChannel:
    """An aio-pika robust channel: hands out the underlay open now, or fails while closed."""

    underlay: FakeUnderlay = field(default_factory=FakeUnderlay)
    is_closed: bool = False
    closed_by_publisher: bool = False

    async def get_underlay_channel(self) -> FakeUnderlay:
        if self.is_closed:
            raise RuntimeError("channel is closed")
        return self.underlay

    async def close(self) -> None:
        self.closed_by_publisher = True


@dataclass
class Broker:
    """The channel factory: hands out `channels` in turn (the last one again), or fails while down."""

    channels: list[FakeChannel] = field(default_factory=lambda: [FakeChannel()])
    down: bool = False
    calls: int = 0

    async def open_channel(self) -> Any:
        self.calls += 1
        if self.down:
            raise ConnectionError("broker unreachable")
        return self.channels.pop(0) if len(self.channels) > 1 else self.channels[0]


def message(body: bytes, settled: list[bytes] | None = None) -> Outgoing:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if settled is not None:
        done.add_done_callback(lambda _: settled.append(body))
    return Outgoing("rtvbp.events", "s1.dtmf", body, Properties(), done=done)


def bodies(underlay: FakeUnderlay) -> list[bytes]:
    return [p.body for p in underlay.publishes]


@pytest.fixture(autouse=True)
def quick_recovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher_module, "RETRY_PAUSE_S", 0.01)
    monkeypatch.setattr(publisher_module, "DEAD_CHANNEL_S", 0.05)


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
async def start(broker: Broker) -> AsyncIterator[Callable[[int], ConfirmingPublisher]]:
    started: list[ConfirmingPublisher] = []

    def make(window: int) -> ConfirmingPublisher:
        publisher = ConfirmingPublisher("test", broker.open_channel, window)
        publisher.start()
        started.append(publisher)
        return publisher

    yield make
    for publisher in started:
        await publisher.stop(flush_timeout_s=0)


async def test_publishes_in_order_with_at_most_window_unconfirmed(
    broker: Broker, start: Callable[[int], ConfirmingPublisher]
) -> None:
    underlay = broker.channels[0].underlay
    publisher = start(3)
    latencies: list[float] = []
    items = [message(b"m%d" % i) for i in range(7)]
    for item in items:
        item.on_sent = latencies.append
        publisher.submit(item)
    await until(lambda: len(underlay.publishes) == 3, 2, "the first window of publishes")
    for confirmed in range(7):
        # The window refills as each confirm settles: exactly `window` unconfirmed, never more.
        assert len(underlay.publishes) == min(7, confirmed + 3)
        underlay.publishes[confirmed].ack()
        await until(lambda n=confirmed: len(latencies) == n + 1, 2, "the confirm to settle")
    assert bodies(underlay) == [b"m%d" % i for i in range(7)]
    assert all(p.exchange == "rtvbp.events" and p.routing_key == "s1.dtmf" for p in underlay.publishes)
    # Unrouted audio must not come back to us in full, and the frame write is not awaited.
    assert all(p.options == {"mandatory": False, "wait": False, "timeout": 10.0} for p in underlay.publishes)
    assert len(latencies) == 7 and all(latency >= 0 for latency in latencies)


async def test_confirms_are_settled_in_submission_order(
    broker: Broker, start: Callable[[int], ConfirmingPublisher]
) -> None:
    underlay = broker.channels[0].underlay
    publisher = start(8)
    settled: list[bytes] = []
    for body in (b"first", b"second", b"third"):
        publisher.submit(message(body, settled))
    await until(lambda: len(underlay.publishes) == 3, 2, "three publishes")
    underlay.publishes[2].ack()
    underlay.publishes[1].ack()
    underlay.publishes[0].ack()
    await until(lambda: len(settled) == 3, 2, "every message to settle")
    assert settled == [b"first", b"second", b"third"]


async def test_a_failed_publish_goes_again_in_order_with_everything_after_it(
    broker: Broker, start: Callable[[int], ConfirmingPublisher]
) -> None:
    underlay = broker.channels[0].underlay
    publisher = start(3)
    settled: list[bytes] = []
    for body in (b"a", b"b", b"c", b"d", b"e"):
        publisher.submit(message(body, settled))
    await until(lambda: len(underlay.publishes) == 3, 2, "the first window")
    underlay.publishes[1].nack()  # b fails; every other publish is confirmed as soon as it goes out

    def confirm_the_rest() -> bool:
        for publish in underlay.publishes:
            if not publish.confirm.done():
                publish.ack()
        return len(settled) == 5

    await until(confirm_the_rest, 2, "every message to settle")
    assert settled == [b"a", b"b", b"c", b"d", b"e"]
    log = bodies(underlay)
    # From the failed one on, everything goes again, in order and before what was still queued (e);
    # what was confirmed behind the failure is sent twice (consumers dedupe by seq).
    retry = log.index(b"b", 2)
    assert log[:2] == [b"a", b"b"] and log[2:retry] == [b"c", b"d"][: retry - 2]
    assert log[retry:] == [b"b", b"c", b"d", b"e"]


async def test_nothing_is_dropped_while_the_broker_is_away(
    broker: Broker, start: Callable[[int], ConfirmingPublisher]
) -> None:
    broker.down = True
    publisher = start(8)
    settled: list[bytes] = []
    withdrawn = message(b"withdrawn")
    for item in (message(b"a", settled), withdrawn, message(b"c", settled)):
        publisher.submit(item)
    await until(lambda: broker.calls >= 3, 2, "a few attempts to open a channel")
    assert withdrawn.done is not None
    withdrawn.done.cancel()  # the caller gave up on it (a refused call's session.started)
    broker.down = False
    underlay = broker.channels[0].underlay
    await until(lambda: len(underlay.publishes) == 2, 2, "the held messages to go out")
    assert bodies(underlay) == [b"a", b"c"]
    for publish in underlay.publishes:
        publish.ack()
    await until(lambda: len(settled) == 2, 2, "the held messages to settle")
    assert settled == [b"a", b"c"]


async def test_a_channel_closed_for_long_is_closed_and_replaced(
    start: Callable[[int], ConfirmingPublisher],
) -> None:
    dead, fresh = FakeChannel(is_closed=True), FakeChannel()
    broker = Broker(channels=[dead, fresh])
    publisher = ConfirmingPublisher("test", broker.open_channel, 8)
    publisher.start()
    try:
        publisher.submit(message(b"a"))
        await until(lambda: len(fresh.underlay.publishes) == 1, 2, "the publish on a fresh channel")
        assert dead.closed_by_publisher  # a robust channel would otherwise be restored forever
        assert dead.underlay.publishes == []
    finally:
        await publisher.stop(flush_timeout_s=0)


async def test_an_underlay_closed_while_idle_is_replaced_before_the_next_publish(
    broker: Broker, start: Callable[[int], ConfirmingPublisher]
) -> None:
    channel = broker.channels[0]
    first = channel.underlay
    publisher = start(8)
    settled: list[bytes] = []
    publisher.submit(message(b"a", settled))
    await until(lambda: len(first.publishes) == 1, 2, "the first publish")
    first.publishes[0].ack()
    await until(lambda: settled == [b"a"], 2, "the first message to settle")
    # The connection came back: the robust channel now runs on a new aiormq channel.
    first.is_closed = True
    channel.underlay = second = FakeUnderlay()
    publisher.submit(message(b"b", settled))
    await until(lambda: len(second.publishes) == 1, 2, "the publish on the new underlay")
    assert bodies(first) == [b"a"] and bodies(second) == [b"b"]


async def test_stop_waits_for_outstanding_confirms(
    broker: Broker, start: Callable[[int], ConfirmingPublisher]
) -> None:
    underlay = broker.channels[0].underlay
    publisher = start(8)
    item = message(b"last words")
    publisher.submit(item)
    await until(lambda: len(underlay.publishes) == 1, 2, "the publish")
    asyncio.get_running_loop().call_later(0.1, underlay.publishes[0].ack)  # confirmed while stop waits
    await asyncio.wait_for(publisher.stop(flush_timeout_s=5), 2)
    assert item.done is not None and item.done.done() and item.done.exception() is None


async def test_stop_gives_up_on_a_confirm_that_never_comes(
    broker: Broker, start: Callable[[int], ConfirmingPublisher]
) -> None:
    underlay = broker.channels[0].underlay
    publisher = start(8)
    publisher.submit(message(b"unanswered"))
    await until(lambda: len(underlay.publishes) == 1, 2, "the publish")
    await asyncio.wait_for(publisher.stop(flush_timeout_s=0.05), 2)
