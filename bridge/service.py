"""Assemble the running service from settings: broker, server, signals, drain."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from pathlib import Path

from bridge.auth import AuthConfig, Authenticator, JwtKey, load_jwt_keys
from bridge.broker.client import BrokerClient
from bridge.broker.names import Topology
from bridge.broker.replay import ReplaySettings
from bridge.config import Settings, broker_tls
from bridge.join import CallBusJoin
from bridge.server.app import BridgeServer
from bridge.telemetry import Telemetry, install_providers, prometheus_text

log = logging.getLogger("bridge.service")

KEY_RELOAD_INTERVAL_S = 30.0


def _fingerprint(keys_dir: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in keys_dir.glob("*.pem")))
    except OSError:
        return ()


def build_authenticator(settings: Settings) -> Authenticator:
    keys: tuple[JwtKey, ...] = ()
    if settings.auth_mode == "jwt":
        keys = load_jwt_keys(settings.jwt_public_keys, settings.jwt_keys_dir)
    return Authenticator(
        AuthConfig(
            mode=settings.auth_mode,
            tokens=tuple(t.get_secret_value() for t in settings.auth_tokens),
            jwt_keys=keys,
            jwt_issuer=settings.jwt_issuer,
            jwt_subject=settings.jwt_subject,
            jwt_accounts=settings.jwt_accounts,
            jwt_leeway_s=settings.jwt_leeway_s,
            allowed_origins=settings.allowed_origins,
        )
    )


def replay_settings(settings: Settings) -> ReplaySettings | None:
    if not settings.replay:
        return None
    return ReplaySettings(settings.replay_max_age_s, settings.replay_max_bytes or None)


class Service:
    """The bridge process: one broker client, one WebSocket server, graceful drain on SIGTERM."""

    def __init__(self, settings: Settings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self.broker = BrokerClient(
            settings.amqp_url.get_secret_value(),
            Topology(settings.exchange_prefix),
            settings.confirm_window,
            settings.instance_id,
            tls=broker_tls(settings),
            heartbeat_s=settings.amqp_heartbeat_s,
            replay=replay_settings(settings),
        )
        self.join = CallBusJoin(self.broker, settings, self.telemetry)
        self.server = BridgeServer(
            settings,
            build_authenticator(settings),
            self.join.link_for,
            broker_ready=self.broker.ready,
            metrics_text=prometheus_text if settings.metrics_enabled else None,
            telemetry=self.telemetry,
        )
        self.telemetry.totals.broker_reconnects = lambda: self.broker.reconnects
        self.telemetry.totals.broker_connected = self.broker.ready
        self.telemetry.totals.draining = lambda: self.server.draining
        self.telemetry.totals.session_limit = lambda: settings.max_sessions
        self.telemetry.totals.lost_calls_ended = lambda: self.broker.reaper.calls_reaped
        self._stop = asyncio.Event()
        self._signals = 0
        self._key_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.broker.start()
        await self.server.start()
        if self.settings.auth_mode == "jwt" and self.settings.jwt_keys_dir is not None:
            self._key_watch = asyncio.create_task(self._watch_jwt_keys(self.settings.jwt_keys_dir))
        await self.broker.wait_connected(timeout=1)  # only to log the state; serving starts either way
        log.info(
            "rtvbp-bridge listening on ws://%s:%d%s (auth %s, broker %s)",
            self.settings.host,
            self.server.port,
            self.settings.ws_path,
            self.settings.auth_mode,
            "ready" if self.broker.ready() else "not reachable yet",
        )

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("stop requested: draining")
            self._stop.set()
        else:
            # A second signal: skip the wait for live calls, end them now.
            log.info("second stop request: ending live calls now")
            for call in list(self.server.calls):
                self.join.end_after_drain(call)

    async def _watch_jwt_keys(self, keys_dir: Path) -> None:
        """Pick up rotated `<kid>.pem` files (a mounted Secret is updated in place) without a restart."""
        seen = _fingerprint(keys_dir)
        while True:
            await asyncio.sleep(KEY_RELOAD_INTERVAL_S)
            current = _fingerprint(keys_dir)
            if current == seen:
                continue
            try:
                self.server.authenticator = build_authenticator(self.settings)
                seen = current
                log.info("reloaded JWT public keys from %s", keys_dir)
            except ValueError as exc:
                log.error("JWT key reload failed, keeping the previous keys: %s", exc)

    async def run_until_stopped(self) -> None:
        await self._stop.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        timeout = 0.0 if self._signals > 1 else self.settings.drain_timeout_s
        if self._key_watch is not None:
            self._key_watch.cancel()
        await self.server.drain(timeout, self.join.end_after_drain)
        await self.server.close()
        await self.broker.close()
        log.info("stopped")


async def serve(settings: Settings) -> None:
    flush_telemetry = install_providers(prometheus=settings.metrics_enabled)
    service = Service(settings)
    service.install_signal_handlers()
    try:
        await service.start()
        # Everything allocated so far lives as long as the process: keep it out of every future garbage
        # collection, whose full passes would otherwise stall all calls' audio for tens of milliseconds.
        gc.freeze()
        with contextlib.suppress(asyncio.CancelledError):
            await service.run_until_stopped()
    finally:
        flush_telemetry()
