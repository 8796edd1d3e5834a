"""A real WebSocket connection over loopback: the server side to test with, the client as the voice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve


@asynccontextmanager
async def socket_pair(
    create_connection: type[ServerConnection] = ServerConnection,
) -> AsyncIterator[tuple[ServerConnection, ClientConnection]]:
    """Yield (server side, client side) of one open connection; the server side is not read by anyone."""
    accepted: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()
    finished = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        accepted.set_result(connection)
        await finished.wait()

    async with serve(
        handler, "127.0.0.1", 0, create_connection=create_connection, compression=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", compression=None) as client:
            connection = await asyncio.wait_for(accepted, 5)
            try:
                yield connection, client
            finally:
                finished.set()
