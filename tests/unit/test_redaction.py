"""Credentials never reach a log line, whichever carrier brought them."""

from __future__ import annotations

import logging

from bridge.server.redaction import RedactCredentials


def redacted(name: str, value: str) -> tuple[object, ...]:
    record = logging.LogRecord("bridge.websockets", logging.DEBUG, __file__, 1, "%s: %s", (name, value), None)
    assert RedactCredentials().filter(record)
    assert isinstance(record.args, tuple)
    return record.args


def test_authorization_header_is_redacted_whole() -> None:
    assert redacted("Authorization", "Bearer s3cret-token") == ("Authorization", "[redacted]")


def test_bearer_subprotocol_entries_are_redacted_and_profiles_kept() -> None:
    offered = "rtvbp.v1, bearer.czNjcmV0, BEARER.bad+base64=="
    assert redacted("Sec-WebSocket-Protocol", offered) == (
        "Sec-WebSocket-Protocol",
        "rtvbp.v1, bearer.[redacted], bearer.[redacted]",
    )


def test_other_headers_pass_unchanged() -> None:
    assert redacted("Origin", "https://app.example") == ("Origin", "https://app.example")
