"""The join: where a call on the WebSocket side meets its link on the bus side.

`bridge/server` and `bridge/broker` never import each other. The server makes one `Call` per connection
and asks `link_for` for the call's `CallApp`; from then on they talk only through `bridge/port.py`. The
one other thing that crosses the seam, ending the calls a drain leaves behind, is here too.
"""

from __future__ import annotations

import asyncio

from bridge.auth import Principal
from bridge.broker.client import BrokerClient
from bridge.broker.link import LinkSettings, SessionLink
from bridge.broker.ownership import LocalOwnership
from bridge.config import DrainAction, Settings
from bridge.port import CallApp, CallControl, CommandError
from bridge.protocol.session import CLOSE_GOING_AWAY
from bridge.telemetry import Telemetry


class CallBusJoin:
    def __init__(self, broker: BrokerClient, settings: Settings, telemetry: Telemetry) -> None:
        self.broker = broker
        self.telemetry = telemetry
        self.drain_action: DrainAction = settings.drain_action
        self.ownership = LocalOwnership()  # the session keys this process holds, shared by its links
        self.link_settings = LinkSettings(
            chunk_ms=settings.audio_chunk_ms,
            audio_backlog_ms=settings.audio_backlog_ms,
            mirror_out=settings.mirror_out,
            publish_timeout_s=settings.publish_timeout_s,
        )

    def link_for(self, principal: Principal) -> CallApp:
        """The bus side of a new call (the principal is for per-tenant routing; one bus today)."""
        return SessionLink(self.broker, self.ownership, self.link_settings, self.telemetry)

    def end_after_drain(self, call: CallControl) -> None:
        """End a call still up after the drain: send the caller back to the IVR (move), or hang up."""
        call.mark_ending("shutdown", f"bridge shutting down ({self.drain_action})")
        method = "application.move" if self.drain_action == "move" else "call.hangup"

        async def end() -> None:
            try:
                settled = await call.request(method, {"reason": "shutdown"})
                if not settled.ok:
                    call.end(CLOSE_GOING_AWAY, "server shutting down", "shutdown")
            except CommandError:
                call.end(CLOSE_GOING_AWAY, "server shutting down", "shutdown")

        task = asyncio.ensure_future(end())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
