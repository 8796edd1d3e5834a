"""Message bodies and AMQP properties of the contract (what the bridge publishes), and delivered commands."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack

from bridge.compat.aiormq import DeliveredMessage, Properties

CONTENT_TYPE = "application/msgpack"
APP_ID = "rtvbp-bridge"


def pack(body: Mapping[str, Any]) -> bytes:
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


def properties(
    *, body_type: str, headers: Mapping[str, Any], correlation_id: str | None = None
) -> Properties:
    """AMQP properties of every message the bridge publishes (transient: live audio is worthless later).

    `headers` holds `session_id` and the trace context; callers build it once per session, which keeps
    the per-chunk cost to a random id and a clock read.
    """
    return Properties(
        content_type=CONTENT_TYPE,
        message_type=body_type,
        message_id=os.urandom(16).hex(),
        timestamp=datetime.fromtimestamp(int(time.time()), tz=UTC),
        app_id=APP_ID,
        delivery_mode=1,
        headers=dict(headers),
        correlation_id=correlation_id,
    )


def event_body(event_type: str, session_id: str, seq: int, data: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "session_id": session_id,
        "seq": seq,
        "ts": time.time_ns() // 1_000_000,
        "data": data,
    }


def audio_body(
    session_id: str, direction: str, seq: int, ts_ms: int, codec: Mapping[str, Any], audio: bytes
) -> dict[str, Any]:
    return {
        "type": "audio",
        "session_id": session_id,
        "direction": direction,
        "seq": seq,
        "ts": ts_ms,
        "codec": codec,
        "audio": audio,
    }


def reply_ok(session_id: str, result: Any) -> dict[str, Any]:
    return {"type": "reply", "session_id": session_id, "ok": True, "result": result}


def reply_error(session_id: str, code: int, message_text: str) -> dict[str, Any]:
    return {
        "type": "reply",
        "session_id": session_id,
        "ok": False,
        "error": {"code": code, "message": message_text},
    }


@dataclass(frozen=True, slots=True)
class Incoming:
    """The parts of a delivered command the bridge uses, read straight off aiormq's delivery.

    Commands arrive ten times a second per call while an agent streams audio; aio-pika's IncomingMessage
    (thirty-odd attributes and an extra task per delivery) is not needed for them.
    """

    body: bytes
    routing_key: str
    reply_to: str | None = None
    correlation_id: str | None = None
    message_id: str | None = None
    headers: Mapping[str, Any] | None = None

    @classmethod
    def from_delivery(cls, delivered: DeliveredMessage) -> Incoming:
        props = delivered.header.properties
        routing_key = getattr(delivered.delivery, "routing_key", "") or ""
        return cls(
            delivered.body, routing_key, props.reply_to, props.correlation_id, props.message_id, props.headers
        )
