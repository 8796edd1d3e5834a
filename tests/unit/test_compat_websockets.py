"""The websockets internals in bridge/compat/websockets.py, checked against the installed version.

Each hook has a signature check and a real-socket check: an upgrade that removes or changes one fails
here, loudly, instead of silently sending caller audio the slow way or breaking the pacer's writes.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
from typing import Any

import pytest
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.frames import Frame
from websockets.protocol import Protocol

from bridge.compat.websockets import FrameWriter, HandoffConnection, handoff_supported
from tests.server.pair import socket_pair
from tests.support.polling import until


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# ---- the hooks exist, with the shapes the compat module relies on -------------------------------------


def test_process_event_is_the_per_frame_hook_of_the_server_connection() -> None:
    assert parameters(Connection.process_event) == ["self", "event"]
    assert parameters(ServerConnection.process_event) == ["self", "event"]
    assert HandoffConnection.process_event is not ServerConnection.process_event
    assert HandoffConnection.__mro__[1] is ServerConnection  # super() reaches the handshake handling


def test_the_write_path_methods_keep_their_signatures() -> None:
    send_binary = inspect.signature(Protocol.send_binary).parameters
    assert list(send_binary)[:2] == ["self", "data"] and send_binary["fin"].default is True
    assert parameters(Connection.send_data) == ["self"]
    assert parameters(Connection.set_connection_exc) == ["self", "exc"]


async def test_the_frame_queue_shows_an_idle_reader_and_the_messages_it_has_not_read() -> None:
    async with socket_pair() as (server, client):
        assert handoff_supported(server)
        frames = server.recv_messages.frames
        assert isinstance(frames.queue, collections.deque) and not frames.queue
        assert frames.get_waiter is None  # nobody reads yet
        reading = asyncio.create_task(server.recv())
        await until(lambda: frames.get_waiter is not None, 5, "the reader to wait", interval=0.001)
        assert isinstance(frames.get_waiter, asyncio.Future) and not frames.get_waiter.done()
        await client.send(b"first")
        assert await reading == b"first"
        assert frames.get_waiter is None
        await client.send(b"second")
        await client.send(b"third")
        await until(lambda: len(frames.queue) == 2, 5, "the unread messages to queue", interval=0.001)
        assert all(type(frame) is Frame for frame in frames.queue)
        assert [await server.recv(), await server.recv()] == [b"second", b"third"]


# ---- the caller-audio hand-off ---------------------------------------------------------------------------


async def test_the_handoff_takes_idle_time_binary_messages_and_the_wire_order_holds() -> None:
    async with socket_pair(HandoffConnection) as (server, client):
        assert isinstance(server, HandoffConnection)
        arrived: list[bytes | str] = []

        def sink(data: bytes) -> bool:
            assert type(data) is bytes
            if data[0] % 5 == 0:
                return False  # declined: the reader gets it, still in its place
            arrived.append(data)
            return True

        assert server.offer_binary_to(sink)

        async def read() -> None:
            async for message in server:
                arrived.append(message)

        reader = asyncio.create_task(read())
        sent: list[bytes | str] = []
        for n in range(60):
            message: bytes | str = bytes([n]) * 40
            if n % 9 == 4:
                message = f"text {n}"
                await client.send(message)
            elif n % 11 == 6:
                await client.send([message[:10], message[10:]])  # fragmented: never offered
            else:
                await client.send(message)
            sent.append(message)
            if n % 6 == 0:
                await asyncio.sleep(0.005)  # let the reader go idle
        await until(lambda: len(arrived) == len(sent), 5, "every message", interval=0.005)
        assert arrived == sent
        offered = sum(1 for m in sent if isinstance(m, bytes) and m[0] % 5 and m[0] % 11 != 6)
        assert 0 < server.binary_taken <= offered
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def test_without_the_queue_hooks_nothing_is_installed_and_messages_keep_the_reader_path() -> None:
    async with socket_pair(HandoffConnection) as (server, client):
        assert isinstance(server, HandoffConnection)
        server.recv_messages.frames = QueueWithoutHooks(server.recv_messages.frames)  # type: ignore[assignment]
        assert not handoff_supported(server)
        assert not server.offer_binary_to(lambda data: True)
        assert server.binary_sink is None
        sent = [bytes([n]) * 40 for n in range(20)]
        reading = asyncio.create_task(server.recv())  # an idle reader: the hand-off would have taken these
        for message in sent:
            await client.send(message)
        received = [await asyncio.wait_for(reading, 5)]
        received += [await asyncio.wait_for(server.recv(), 5) for _ in sent[1:]]
        assert received == sent
        assert server.binary_taken == 0


class QueueWithoutHooks:
    """The Assembler's frame queue as an upgrade might ship it: same methods, no `get_waiter`/`queue`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __len__(self) -> int:
        return len(self._inner)

    def put(self, item: Frame) -> None:
        self._inner.put(item)

    async def get(self, block: bool = True) -> Frame:
        return await self._inner.get(block)  # type: ignore[no-any-return]

    def put_back(self, items: Any) -> None:
        self._inner.put_back(items)

    def abort(self) -> None:
        self._inner.abort()


# ---- the pacer's synchronous write path -----------------------------------------------------------------


async def test_the_frame_writer_sends_one_binary_message_per_frame_in_order() -> None:
    async with socket_pair() as (server, client):
        writer = FrameWriter(server)
        assert writer.write([b"one", b"two"])
        assert writer.write([b"three"])
        assert [await client.recv() for _ in range(3)] == [b"one", b"two", b"three"]
        assert server.transport.get_write_buffer_size() == 0  # flushed by the write, not by a later task


async def test_a_failed_write_breaks_the_connection_the_way_websockets_does() -> None:
    async with socket_pair() as (server, client):
        writer = FrameWriter(server)  # made before the failure: the transport is read at each write
        broken = BrokenPipeError("the voice went away")
        server.transport = FailingTransport(server.transport, broken)  # type: ignore[assignment]
        assert not writer.write([b"lost"])
        assert server.connection_exc is broken
        with pytest.raises(ConnectionClosedError) as closed:
            await asyncio.wait_for(server.recv(), 5)
        assert closed.value.__cause__ is broken
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.recv(), 5)  # the socket was aborted: the peer sees it drop


class FailingTransport:
    """A transport whose writes fail (a reset peer); everything else, abort included, is the real one."""

    def __init__(self, inner: asyncio.Transport, error: Exception) -> None:
        self._inner, self._error = inner, error

    def write(self, data: bytes) -> None:
        raise self._error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
