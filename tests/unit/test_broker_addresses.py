"""Broker address lists and TLS settings: parsed once at start-up, with errors that never show a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.broker.addresses import AddressError, BrokerTLS, parse_addresses, redact
from bridge.config import SettingsError, load_settings


def test_a_comma_separated_list_keeps_its_order() -> None:
    urls = parse_addresses(" amqp://u:p@node1:5672/, amqps://u:p@node2:5671/vh ,,amqp://node3/ ")
    assert [(u.scheme, u.host, u.port) for u in urls] == [
        ("amqp", "node1", 5672),
        ("amqps", "node2", 5671),
        ("amqp", "node3", None),  # aiormq picks the scheme's default port
    ]


@pytest.mark.parametrize("text", ["", " , ", "http://u:hunter2@node1/", "amqp:///vhost-only"])
def test_unusable_lists_are_refused_without_the_password(text: str) -> None:
    with pytest.raises(AddressError) as exc:
        parse_addresses(text)
    assert "hunter2" not in str(exc.value)


def test_redact_hides_the_password_and_query() -> None:
    (url,) = parse_addresses("amqps://bridge:hunter2@rabbit.example:5671/prod?heartbeat=30")
    assert redact(url) == "amqps://bridge:******@rabbit.example:5671/prod"


def test_settings_name_the_variable_and_hide_the_password() -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(amqp_url="amqp://u:hunter2@node1/,ftp://u:hunter2@node2/")
    assert "BRIDGE_AMQP_URL" in str(exc.value) and "address 2" in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_tls_files_must_exist_and_cert_needs_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="BRIDGE_AMQP_CA_FILE"):
        load_settings(amqp_ca_file=tmp_path / "missing.pem")
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError, match="BRIDGE_AMQP_KEY_FILE go together"):
        load_settings(amqp_cert_file=cert)


def test_hostname_verification_is_on_by_default() -> None:
    assert BrokerTLS().context().check_hostname
    assert not BrokerTLS(verify_hostname=False).context().check_hostname
