"""The WebSocket server: admission before the 101, health endpoints, one `Call` per connection."""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader, NegotiationError
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from bridge.auth import AdmissionError, Authenticator, Principal
from bridge.compat.websockets import HandoffConnection
from bridge.config import Settings
from bridge.port import CallApp
from bridge.protocol import negotiation
from bridge.protocol.session import CLOSE_GOING_AWAY, SessionConfig
from bridge.server.call import Call
from bridge.server.redaction import websockets_logger
from bridge.telemetry import Telemetry

log = logging.getLogger("bridge.server")

# The close code for "server overloaded, try again": used when the session limit is hit after admission.
CLOSE_TRY_AGAIN_LATER = 1013


@dataclass(slots=True)
class AdmissionStats:
    telemetry: Telemetry
    refused: dict[str, int] = field(default_factory=dict)

    def refuse(self, cause: str) -> None:
        self.refused[cause] = self.refused.get(cause, 0) + 1
        self.telemetry.admission_refused.add(1, {"cause": cause})


AppFactory = Callable[[Principal], CallApp]


class BridgeServer:
    """Owns the listening socket and the live calls of this process."""

    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator,
        app_factory: AppFactory,
        broker_ready: Callable[[], bool] = lambda: True,
        metrics_text: Callable[[], bytes] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.app_factory = app_factory
        self.broker_ready = broker_ready
        self.metrics_text = metrics_text
        self.telemetry = telemetry or Telemetry()
        self.calls: set[Call] = set()
        self._calls_changed = asyncio.Event()
        self.admission = AdmissionStats(self.telemetry)
        self.telemetry.totals.active_sessions = lambda: len(self.calls)
        self.telemetry.totals.live = lambda: [c.stats for c in self.calls]
        self.draining = False
        self._server: Server | None = None
        self._session_config = SessionConfig(
            codec_preference=settings.codec_preference,
            request_timeout_s=settings.request_timeout_s,
            init_timeout_s=settings.init_timeout_s,
            terminal_grace_ms=settings.terminal_grace_ms,
        )

    # ---- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        self._server = await serve(
            self._handle,
            s.host,
            s.port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            compression=None,  # permessage-deflate costs CPU per audio frame and buys nothing on PCM
            max_size=s.max_message_bytes,
            open_timeout=s.handshake_timeout_s,
            ping_interval=s.ws_ping_interval_s,
            ping_timeout=s.ws_ping_timeout_s,
            close_timeout=5,
            reuse_port=s.workers > 1,
            server_header="rtvbp-bridge",
            logger=websockets_logger(),
            create_connection=HandoffConnection,
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    def ready(self) -> bool:
        return self._server is not None and not self.draining and self.broker_ready()

    async def drain(self, timeout_s: float, end_call: Callable[[Call], None]) -> None:
        """Stop admitting, let live calls finish for `timeout_s`, then end the rest with `end_call`."""
        self.draining = True
        log.info("draining: %d live calls, up to %.0f s", len(self.calls), timeout_s)
        await self._wait_no_calls(timeout_s)
        for call in list(self.calls):
            end_call(call)
        await self._wait_no_calls(10)

    async def _wait_no_calls(self, timeout_s: float) -> None:
        """Until every call's handler is done (its session.ended handed to the broker) or the timeout."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.calls:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            self._calls_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._calls_changed.wait(), remaining)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=False)
            for call in list(self.calls):
                call.end(CLOSE_GOING_AWAY, "server stopping", "shutdown")
            await self._server.wait_closed()

    # ---- handshake ------------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return _text(connection, http.HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            if self.ready():
                return _text(connection, http.HTTPStatus.OK, "ready\n")
            why = "draining" if self.draining else "broker unavailable"
            return _text(connection, http.HTTPStatus.SERVICE_UNAVAILABLE, f"not ready: {why}\n")
        if path == "/metrics" and self.metrics_text is not None:
            body = self.metrics_text()
            headers = Headers(
                [
                    ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                ]
            )
            return Response(http.HTTPStatus.OK.value, "OK", headers, body)
        if path != self.settings.ws_path:
            return _text(connection, http.HTTPStatus.NOT_FOUND, "not found\n")
        if self.draining:
            self.admission.refuse("draining")
            return _text(connection, http.HTTPStatus.SERVICE_UNAVAILABLE, "Server shutting down\n")
        if len(self.calls) >= self.settings.max_sessions:
            self.admission.refuse("capacity")
            return _text(connection, http.HTTPStatus.SERVICE_UNAVAILABLE, "Too many sessions\n")
        try:
            offered = _offered_subprotocols(request.headers)
        except InvalidHeader:
            self.admission.refuse("bad_subprotocol_header")
            return _text(connection, http.HTTPStatus.BAD_REQUEST, "Malformed Sec-WebSocket-Protocol\n")
        try:
            principal = self.authenticator.authenticate(
                request.headers.get("Authorization"), offered, request.headers.get("Origin")
            )
        except AdmissionError as exc:
            self.admission.refuse(exc.cause)
            # Never log the credential: only the cause and the peer.
            log.info("admission refused: %s (%s) from %s", exc.cause, exc.status, _peer(connection))
            return _text(connection, http.HTTPStatus(exc.status), f"{http.HTTPStatus(exc.status).phrase}\n")
        connection.principal = principal  # type: ignore[attr-defined]
        return None

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        try:
            selection = negotiation.select_profile(offered)
        except negotiation.NegotiationError as exc:
            self.admission.refuse(exc.cause)
            raise NegotiationError(str(exc)) from None
        return Subprotocol(selection.token) if selection.token is not None else None

    # ---- calls ----------------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        if len(self.calls) >= self.settings.max_sessions or self.draining:
            # Admission raced with other upgrades; the limit is a hard one.
            self.admission.refuse("capacity")
            await ws.close(CLOSE_TRY_AGAIN_LATER, "Too many sessions")
            return
        principal: Principal = ws.principal  # type: ignore[attr-defined]
        telemetry = self.telemetry
        headers = ws.request.headers if ws.request is not None else Headers()
        span = telemetry.start_session_span({k.lower(): v for k, v in headers.raw_items()})
        if principal.account:
            span.set_attribute("rtvbp.account", principal.account)
        call = Call(
            ws=ws,
            config=self._session_config,
            app=self.app_factory(principal),
            playout_lead_ms=self.settings.playout_lead_ms,
            playout_max_ms=self.settings.playout_max_ms,
            telemetry=telemetry,
            span=span,
        )
        self.calls.add(call)
        error: str | None = None
        try:
            with telemetry.activate(span):
                summary = await call.run()
                await call.app.end(summary)
            self._account(call, summary.reason)
            span.set_attribute("rtvbp.end_reason", summary.reason)
            if summary.reason == "error":
                error = summary.detail
        except Exception as exc:
            log.exception("call teardown failed")
            error = type(exc).__name__
        finally:
            telemetry.end(span, error)
            self.calls.discard(call)
            self._calls_changed.set()

    def _account(self, call: Call, reason: str) -> None:
        """Fold a finished call's counters into the process totals the metrics report."""
        totals = self.telemetry.totals
        stats = call.stats
        totals.frames["in"] += stats.frames_in
        totals.frames["out"] += stats.frames_out
        totals.bytes["in"] += stats.bytes_in
        totals.bytes["out"] += stats.bytes_out
        totals.dropped_bytes["out"] += stats.dropped_out_bytes
        if call.playout is not None:
            totals.underruns += call.playout.underruns
        if call.session.init_params is not None:
            self.telemetry.sessions_ended.add(1, {"reason": reason})


def _offered_subprotocols(headers: Headers) -> list[str]:
    offered: list[str] = []
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        offered.extend(parse_subprotocol(value))
    return offered


def _text(connection: ServerConnection, status: http.HTTPStatus, body: str) -> Response:
    return connection.respond(status, body)


def _peer(connection: ServerConnection) -> str:
    try:
        host, port = connection.remote_address[:2]
        return f"{host}:{port}"
    except Exception:
        return "unknown"
