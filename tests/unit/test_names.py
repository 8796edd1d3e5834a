"""The session-key rule of the AMQP contract, checked against digests computed outside the bridge."""

from __future__ import annotations

import pytest

from bridge.broker.names import session_key

# Expected keys: `h_` + the first 40 hex digits of `printf '%s' ID | sha256sum` (coreutils), per
# docs/amqp-contract.md; ids matching ^[A-Za-z0-9_-]{1,128}$ are used as they are.
CASES = [
    ("abc-DEF_123", "abc-DEF_123"),
    ("a" * 128, "a" * 128),
    ("call.42/#x", "h_757c77a76b751bd6eb4dd07190979b212119fbd3"),
    ("ünïcode", "h_b8be8967e4de3eb294835b174818452317976725"),
    ("a" * 129, "h_c12cb024a2e5551cca0e08fce8f1c5e314555cc3"),
    ("node call/1", "h_5c6a9171de5cf50b0b32d74727761af957e503a3"),
]


@pytest.mark.parametrize(("session_id", "key"), CASES)
def test_session_key_follows_the_contract(session_id: str, key: str) -> None:
    assert session_key(session_id) == key
