"""Message bodies and AMQP properties of the contract, and strict decoding of consumer commands."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack
from aiormq import spec
from aiormq.abc import DeliveredMessage

CONTENT_TYPE = "application/msgpack"
APP_ID = "rtvbp-bridge"
COMMAND_TYPES = frozenset({"audio", "mark", "clear", "request", "event"})
MAX_COMMAND_DEPTH = 32


def pack(body: Mapping[str, Any]) -> bytes:
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


def properties(
    *, body_type: str, headers: Mapping[str, Any], correlation_id: str | None = None
) -> spec.Basic.Properties:
    """AMQP properties of every message the bridge publishes (transient: live audio is worthless later).

    `headers` holds `session_id` and the trace context; callers build it once per session, which keeps
    the per-chunk cost to a random id and a clock read.
    """
    return spec.Basic.Properties(
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


class BadCommand(ValueError):
    def __init__(self, code: int, message_text: str, command_type: str = "unknown") -> None:
        super().__init__(message_text)
        self.code = code
        self.command_type = command_type


@dataclass(frozen=True, slots=True)
class Command:
    type: str
    body: dict[str, Any]


def decode_command(raw: bytes, max_bytes: int) -> Command:
    """Decode a command body; every way it can be wrong becomes a BadCommand with a clear message."""
    if len(raw) > max_bytes:
        raise BadCommand(413, f"command of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        body = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_bin_len=max_bytes,
            max_str_len=max_bytes,
            max_array_len=100_000,
            max_map_len=100_000,
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise BadCommand(400, f"body is not valid msgpack: {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise BadCommand(400, "body must be a msgpack map")
    if _depth(body) > MAX_COMMAND_DEPTH:
        raise BadCommand(400, "body nests too deeply")
    command_type = body.get("type")
    if not isinstance(command_type, str):
        raise BadCommand(400, "body needs a string 'type'")
    if command_type not in COMMAND_TYPES:
        raise BadCommand(501, f"unknown command type: {command_type}", command_type)
    return Command(command_type, body)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_COMMAND_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level
