"""AMQPS against a real RabbitMQ TLS listener, with a CA and client certificate made in the test.

The node requires a client certificate (`fail_if_no_peer_cert`), so the passing case also proves the
bridge presents one. A wrong CA or a host name the certificate does not name must stop the bridge from
connecting, with an error line that says why and shows no password.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bridge.tools.voicepeer import VoicePeer
from tests.conftest import ws_url
from tests.support.amqp import Agent
from tests.support.polling import until

from .certs import TestCA
from .rabbit_nodes import Node, TLSFiles


def tls_settings(tls: TLSFiles, ca_file: Path | None = None) -> dict[str, Any]:
    client = tls.ca.issue("rtvbp-bridge-client", server=False)
    return {
        "amqp_ca_file": ca_file or tls.ca.bundle,
        "amqp_cert_file": client.cert,
        "amqp_key_file": client.key,
    }


async def test_amqps_with_the_right_ca_and_a_client_certificate_serves_calls(
    nodes: list[Node], tls: TLSFiles, replicas: Any, prefix: str
) -> None:
    node = nodes[2]
    service = await replicas("tls-ok", node.tls_url("localhost"), **tls_settings(tls))
    names = node.ctl("list_connections", "ssl", "peer_cert_subject", "client_properties")
    bridge_lines = [line for line in names.splitlines() if "rtvbp-bridge tls-ok" in line]
    assert len(bridge_lines) == 2 and all(line.startswith("true") for line in bridge_lines), names
    assert all("CN=rtvbp-bridge-client" in line for line in bridge_lines), names

    agent = await Agent(node.url(), prefix).start()
    try:
        voice = VoicePeer(ws_url(service), session_id="over-tls")
        await voice.connect()
        await voice.initialize()
        await agent.wait_event("session.started", "over-tls")
        reply = await agent.command("over-tls", {"type": "request", "method": "ping", "params": {"t0": 1}})
        assert reply is not None and reply["ok"]
        await voice.hangup()
        await voice.close()
        await agent.wait_event("session.ended", "over-tls")
    finally:
        await agent.stop()


@pytest.mark.parametrize(
    ("case", "host", "reason"),
    [
        ("wrong-ca", "localhost", "certificate verify failed"),
        ("wrong-host", "127.0.0.1", "IP address mismatch"),
    ],
)
async def test_amqps_refuses_a_broker_it_cannot_verify_with_a_clear_error(
    nodes: list[Node],
    tls: TLSFiles,
    replicas: Any,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    case: str,
    host: str,
    reason: str,
) -> None:
    ca_file = TestCA(tmp_path, "some-other-ca").bundle if case == "wrong-ca" else None
    url = nodes[2].tls_url(host).replace("guest:guest", "guest:s3cret-pw")
    with caplog.at_level(logging.WARNING, logger="bridge.broker"):
        service = await replicas(f"tls-{case}", url, wait_ready=False, **tls_settings(tls, ca_file))

        def tls_error() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if r.levelno >= logging.ERROR and "TLS" in r.getMessage()
            ]

        await until(tls_error, timeout=10, what="a TLS error in the log")
    message = tls_error()[0]
    assert reason in message, message
    assert f"amqps://guest:******@{host}:{nodes[2].tls_port}" in message
    assert "s3cret-pw" not in caplog.text
    assert not service.broker.ready() and not service.server.ready()


async def test_host_name_verification_can_be_switched_off(
    nodes: list[Node], tls: TLSFiles, replicas: Any
) -> None:
    # For brokers reached through an address their certificate does not name (still CA-verified).
    service = await replicas(
        "tls-noverify", nodes[2].tls_url("127.0.0.1"), amqp_verify_hostname=False, **tls_settings(tls)
    )
    assert service.broker.ready()
