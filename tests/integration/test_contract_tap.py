"""The contract tap (tests/support/contract_tap.py) really catches what breaks the contract."""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika
import msgpack

from tests.support.amqp import delete_topology
from tests.support.contract_tap import ContractTap
from tests.support.polling import until

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
DTMF = {
    "type": "dtmf",
    "session_id": "tap-1",
    "seq": 1,
    "ts": 1_700_000_000_000,
    "data": {"seq": 0, "pressed_at": 1, "released_at": 2, "digit": "5"},
}


async def test_the_tap_flags_bad_bodies_and_headers_and_ignores_what_tests_publish(amqp_url: str) -> None:
    prefix = f"tap-{uuid.uuid4().hex[:10]}"
    tap = await ContractTap(amqp_url, prefix).start()
    try:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            events = await channel.get_exchange(f"{prefix}.events", ensure=False)

            async def publish(body: Any, headers: dict[str, str], app_id: str = "rtvbp-bridge") -> None:
                message = aio_pika.Message(
                    msgpack.packb(body),
                    content_type="application/msgpack",
                    type=body["type"],
                    app_id=app_id,
                    headers=headers,
                )
                await events.publish(message, routing_key="tap-1.dtmf")

            good = {"session_id": "tap-1", "traceparent": TRACEPARENT}
            await publish(DTMF, good)
            await publish({**DTMF, "data": {**DTMF["data"], "digit": 5}}, good)  # digit must be text
            await publish(DTMF, {"session_id": "tap-1"})  # no traceparent
            await publish({**DTMF, "seq": "1"}, good, app_id="a-test")  # not the bridge's: ignored
            await until(lambda: tap.checked == 3, 5, "the tap to check three bridge messages")
    finally:
        violations = await tap.stop()
        await delete_topology(amqp_url, prefix)
    assert len(violations) == 2, violations
    assert "digit" in violations[0] and "5 is not of type 'string'" in violations[0]
    assert "'traceparent' is a required property" in violations[1]
