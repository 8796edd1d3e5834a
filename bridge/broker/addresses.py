"""Where the broker is: an address list (the nodes of one cluster, or a load balancer) and TLS to reach it.

The bridge connects to the first address that answers and, when that connection is lost, reconnects to the
next one that does. aio-pika's robust connection restores channels, queues and consumers after a reconnect
but only knows one URL; `RotatingRobustConnection` (bridge.compat.aio_pika) moves its URL to the next
address whenever an attempt fails or a live connection is lost, so the restore happens on another node.
Passwords never reach a log line: addresses are logged through `redact`.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aio_pika.abc import AbstractRobustConnection
from yarl import URL

from bridge.compat.aio_pika import RotatingRobustConnection

log = logging.getLogger("bridge.broker")

SCHEMES = ("amqp", "amqps")


class AddressError(ValueError):
    """A broker address list that cannot work; the message never contains a password."""


def parse_addresses(text: str) -> tuple[URL, ...]:
    """Comma-separated AMQP URLs, in order of preference."""
    urls: list[URL] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            url = URL(part)
        except ValueError as exc:
            raise AddressError(f"address {len(urls) + 1} is not a URL") from exc
        if url.scheme not in SCHEMES or not url.host:
            raise AddressError(f"address {len(urls) + 1} ({redact(url)}) must be amqp://host or amqps://host")
        urls.append(url)
    if not urls:
        raise AddressError("no broker address given")
    return tuple(urls)


def redact(url: URL) -> str:
    """The address as it may be logged: scheme, host, port and vhost; never the user's password."""
    return str(url.with_password("******") if url.password else url).split("?")[0]


@dataclass(frozen=True)
class BrokerTLS:
    """How `amqps://` addresses are verified: a CA bundle, an optional client certificate, host names."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        """The client context; without a CA file the system's trust store verifies the broker."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        context.check_hostname = self.verify_hostname
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _log_move(left: URL, following: URL) -> None:
    log.info("broker %s lost or not answering; trying %s next", redact(left), redact(following))


async def connect_first_answering(
    addresses: Sequence[URL],
    tls: BrokerTLS,
    *,
    name: str,
    reconnect_interval: float = 1.0,
    timeout: float = 5.0,
    heartbeat: int | None = None,
) -> AbstractRobustConnection:
    """Connect to the first address that answers, in list order; raise the last failure if none does.

    A TLS failure (unknown CA, wrong host name) is logged as an error with its reason: it is a deployment
    mistake, not a broker that is briefly away.
    """
    context = tls.context() if any(a.scheme == "amqps" for a in addresses) else None
    if heartbeat is not None:  # aiormq reads it from the URL query, like aio-pika's connect_robust puts it
        addresses = [a.update_query(heartbeat=heartbeat) for a in addresses]
    last: Exception = ConnectionError("no broker address")
    for start, address in enumerate(addresses):
        conn = RotatingRobustConnection(
            addresses,
            start,
            on_move=_log_move,
            ssl_context=context,  # aiormq applies it to amqps:// addresses only
            reconnect_interval=reconnect_interval,
            client_properties={"connection_name": name},
        )
        try:
            await conn.connect(timeout)
        except BaseException as exc:
            # Closed in every case: a connection left behind (say, cancelled at shutdown mid-attempt) keeps
            # reconnecting on its own task forever.
            with contextlib.suppress(Exception):
                await conn.close()
            if not isinstance(exc, Exception):
                raise
            last = exc
            _log_failure(address, exc)
            continue
        log.info("broker connection %r on %s", name, redact(address))
        return conn
    raise last


def _log_failure(address: URL, exc: Exception) -> None:
    tls_error = _tls_cause(exc)
    if tls_error is not None:
        log.error("TLS to broker %s failed: %s", redact(address), tls_error)
    else:
        log.warning("broker %s not reachable: %s", redact(address), type(exc).__name__)


def _tls_cause(exc: BaseException | None) -> BaseException | None:
    """The TLS failure behind `exc`: aiormq wraps it in AMQPConnectionError (chained, or by its text)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ssl.SSLError | ssl.CertificateError) or "[SSL" in str(exc):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None
