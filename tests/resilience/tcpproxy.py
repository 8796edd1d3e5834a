"""An asyncio TCP forwarder with faults on demand (this machine has no netem and no toxiproxy).

Put it between a client and a real server (a voice and the bridge, or the bridge and RabbitMQ) and:

- `down()` / `up()`: while down, new connections are reset at once (a server that is not there);
- `reset()`: abort every live connection with a TCP RST on both sides (a peer that vanished);
- `freeze()` / `thaw()`: stop forwarding in both directions without closing anything (a half-open
  socket: the bytes go nowhere and no FIN or RST ever arrives).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika

_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.accepting = True
        self.accepted = 0
        self.refused = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._pairs: set[_Pair] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        return self.port

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # ---- faults -------------------------------------------------------------------------------------------

    def down(self) -> None:
        self.accepting = False
        self.reset()

    def up(self) -> None:
        self.accepting = True

    def reset(self) -> None:
        for pair in list(self._pairs):
            _abort_with_rst(pair.client)
            _abort_with_rst(pair.server)
            for task in pair.tasks:
                task.cancel()
        self._pairs.clear()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    @property
    def live(self) -> int:
        return len(self._pairs)

    # ---- forwarding ---------------------------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            self.refused += 1
            _abort_with_rst(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.refused += 1
            _abort_with_rst(writer)
            return
        self.accepted += 1
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        pair.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, pair)),
            asyncio.create_task(self._pump(up_reader, writer, pair)),
        ]

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, pair: _Pair) -> None:
        try:
            while data := await source.read(65536):
                await self._flowing.wait()  # frozen: hold the bytes (and stop reading) without closing
                sink.write(data)
                await sink.drain()
            if sink.can_write_eof():
                sink.write_eof()  # pass a clean FIN on
        except (OSError, asyncio.IncompleteReadError):
            if pair in self._pairs:
                self._pairs.discard(pair)
                _abort_with_rst(pair.client)
                _abort_with_rst(pair.server)


@contextlib.asynccontextmanager
async def broker_proxy(amqp_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy in front of the broker, and the AMQP URL that goes through it; stopped on exit."""
    url = aio_pika.connection.make_url(amqp_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5672)
    await proxy.start()
    try:
        yield proxy, str(url.with_port(proxy.port))
    finally:
        await proxy.stop()
