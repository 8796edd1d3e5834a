"""Consumer commands: decoded and validated in one place into frozen dataclasses.

As `protocol/catalog.py` does for RTVBP payloads, every way a command body can be wrong is found here and
becomes a `BadCommand` with the contract's code and a message that says what is wrong; the handlers
downstream are typed on the dataclasses and check nothing again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from bridge.port import CommandError

COMMAND_TYPES = frozenset({"audio", "mark", "clear", "request", "event"})
MAX_COMMAND_DEPTH = 32
# The codec fields an audio command may state; each must equal the session's.
CODEC_FIELDS = ("name", "sample_rate", "channels", "bit_depth", "endianness")


class BadCommand(CommandError):
    """A command the bridge cannot execute as written (400, 413, 501); `command_type` when known."""

    def __init__(self, code: int, message: str, command_type: str = "unknown") -> None:
        super().__init__(code, message)
        self.command_type = command_type


@dataclass(frozen=True, slots=True)
class AudioCommand:
    type: ClassVar[str] = "audio"
    audio: bytes


@dataclass(frozen=True, slots=True)
class MarkCommand:
    type: ClassVar[str] = "mark"
    name: str


@dataclass(frozen=True, slots=True)
class ClearCommand:
    type: ClassVar[str] = "clear"


@dataclass(frozen=True, slots=True)
class RequestCommand:
    type: ClassVar[str] = "request"
    method: str
    params: Any


@dataclass(frozen=True, slots=True)
class EventCommand:
    type: ClassVar[str] = "event"
    event: str
    data: Any


Command = AudioCommand | MarkCommand | ClearCommand | RequestCommand | EventCommand


def decode_command(
    raw: bytes, max_bytes: int, session_codec: Mapping[str, Any] | None = None, block_align: int = 1
) -> Command:
    """Decode and validate a command body.

    Audio commands are checked against the session: `session_codec` (the negotiated codec) and
    `block_align` (bytes per sample of all channels: audio must be whole samples).
    """
    body = _unpack(raw, max_bytes)
    command_type = body.get("type")
    if not isinstance(command_type, str):
        raise BadCommand(400, "body needs a string 'type'")
    if command_type == "audio":
        return _audio(body, session_codec, block_align)
    if command_type == "mark":
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise BadCommand(400, "mark command needs a non-empty string 'name'", "mark")
        return MarkCommand(name)
    if command_type == "clear":
        return ClearCommand()
    if command_type == "request":
        method = body.get("method")
        if not isinstance(method, str) or not method:
            raise BadCommand(400, "request command needs a string 'method'", "request")
        return RequestCommand(method, _or_empty(body.get("params", {})))
    if command_type == "event":
        event = body.get("event")
        if not isinstance(event, str):
            raise BadCommand(400, "event command needs a string 'event'", "event")
        return EventCommand(event, _or_empty(body.get("data", {})))
    raise BadCommand(501, f"unknown command type: {command_type}", command_type)


def _unpack(raw: bytes, max_bytes: int) -> dict[Any, Any]:
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
    return body


def _audio(
    body: Mapping[Any, Any], session_codec: Mapping[str, Any] | None, block_align: int
) -> AudioCommand:
    audio = body.get("audio")
    if not isinstance(audio, bytes | bytearray) or not audio:
        raise BadCommand(400, "audio command needs non-empty binary 'audio'", "audio")
    codec = body.get("codec")
    if codec is not None and not isinstance(codec, dict):
        raise BadCommand(400, "codec must be a map", "audio")
    if codec is not None and session_codec is not None:
        for field in CODEC_FIELDS:
            if field in codec and codec[field] != session_codec.get(field):
                stated = codec.get("id", codec)
                raise BadCommand(
                    400, f"audio codec {stated} does not match the session's {session_codec['id']}", "audio"
                )
    if len(audio) % block_align:
        # A partial sample would shift every later sample by a byte: noise, not a padded frame.
        codec_id = session_codec.get("id", "the session codec") if session_codec else "the session codec"
        raise BadCommand(
            400,
            f"audio of {len(audio)} bytes is not whole samples of {codec_id}: "
            f"send a multiple of {block_align} bytes",
            "audio",
        )
    return AudioCommand(bytes(audio))


def _or_empty(value: Any) -> Any:
    return {} if value is None else value


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_COMMAND_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level
