"""WebSocket helpers shared by the live tests."""

from __future__ import annotations

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


async def status_of(url: str, **kwargs: object) -> int:
    """101 when the upgrade is accepted, else the HTTP status the server refused it with."""
    try:
        async with connect(url, open_timeout=5, **kwargs) as ws:  # type: ignore[arg-type]
            assert ws.response is not None
            return ws.response.status_code
    except InvalidStatus as exc:
        return exc.response.status_code
