"""Codec choice for `session.initialize`: the first preferred codec the voice offered, returned verbatim.

Only L16 (signed 16-bit little-endian PCM) is carried on rtvbp.v1; an offer is usable when its fields
describe whole-sample 20 ms frames. Preferences are codec ids (`L16/8000/1`) matched on the offer's
fields, not its id string, so an offer whose id is spelled differently still matches what it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bridge.protocol.catalog import AudioCodec

FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class CodecKey:
    name: str
    sample_rate: int
    channels: int

    @classmethod
    def parse(cls, codec_id: str) -> CodecKey:
        name, rate, channels = codec_id.split("/")
        return cls(name.upper(), int(rate), int(channels))

    def __str__(self) -> str:
        return f"{self.name}/{self.sample_rate}/{self.channels}"


def usable(codec: AudioCodec) -> bool:
    return (
        codec.name.upper() == "L16"
        and codec.bit_depth == 16
        and 1 <= codec.channels <= 8
        and codec.sample_rate > 0
        and (codec.sample_rate * FRAME_MS) % 1000 == 0
    )


def choose_codec(offered: Sequence[AudioCodec], preference: Sequence[str]) -> AudioCodec | None:
    """The offered codec matching the earliest preference, or None when nothing acceptable is offered."""
    for wanted in (CodecKey.parse(p) for p in preference):
        for codec in offered:
            key = CodecKey(codec.name.upper(), codec.sample_rate, codec.channels)
            if key == wanted and usable(codec):
                return codec
    return None


def frame_bytes(codec: AudioCodec) -> int:
    return codec.sample_rate * codec.channels * 2 * FRAME_MS // 1000
