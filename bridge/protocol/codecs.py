"""Codec choice for `session.initialize`: the first preferred codec the voice offered, returned verbatim.

Only L16 (signed 16-bit little-endian PCM) is carried on rtvbp.v1, in 20 ms frames; an offer is usable
when `unsupported_codec` (the one statement of that rule) finds nothing wrong with it. Preferences are
codec ids (`L16/8000/1`) matched on the offer's fields, not its id string, so an offer whose id is
spelled differently still matches what it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.protocol.catalog import AudioCodec

#: RTVBP carries 20 ms frames; PTime is not on the wire, it is a constant in every SDK.
FRAME_MS = 20
MAX_CHANNELS = 8


def unsupported_codec(name: str, sample_rate: int, bit_depth: int, channels: int) -> str | None:
    """Why rtvbp.v1 cannot carry this codec, or None when it can: the one codec rule of the bridge."""
    if name.upper() != "L16":
        return f"unsupported codec {name!r}: only L16 is carried on rtvbp.v1"
    if bit_depth != 16:
        return f"unsupported bit depth {bit_depth}: L16 is 16-bit"
    if not 1 <= channels <= MAX_CHANNELS:
        return f"channels must be 1..{MAX_CHANNELS}, got {channels}"
    if sample_rate <= 0:
        return f"sample rate must be positive, got {sample_rate}"
    if (sample_rate * FRAME_MS) % 1000:
        return f"a {FRAME_MS} ms frame at {sample_rate} Hz does not hold whole samples"
    return None


_CODEC_ID = re.compile(r"([A-Za-z0-9]+)/([0-9]+)/([0-9]+)")


@dataclass(frozen=True, slots=True)
class CodecKey:
    name: str
    sample_rate: int
    channels: int

    @classmethod
    def parse(cls, codec_id: str) -> CodecKey:
        """`L16/8000/1` -> its key; ValueError for text that is not `<name>/<rate>/<channels>`."""
        match = _CODEC_ID.fullmatch(codec_id)
        if match is None:
            raise ValueError(f"{codec_id!r} is not a codec id like L16/8000/1")
        return cls(match[1].upper(), int(match[2]), int(match[3]))

    def unsupported(self) -> str | None:
        """Why rtvbp.v1 cannot carry this codec (an id implies 16-bit L16), or None."""
        return unsupported_codec(self.name, self.sample_rate, 16, self.channels)

    def __str__(self) -> str:
        return f"{self.name}/{self.sample_rate}/{self.channels}"


def usable(codec: AudioCodec) -> bool:
    return unsupported_codec(codec.name, codec.sample_rate, codec.bit_depth, codec.channels) is None


def choose_codec(offered: Sequence[AudioCodec], preference: Sequence[str]) -> AudioCodec | None:
    """The offered codec matching the earliest preference, or None when nothing acceptable is offered."""
    for wanted in (CodecKey.parse(p) for p in preference):
        for codec in offered:
            key = CodecKey(codec.name.upper(), codec.sample_rate, codec.channels)
            if key == wanted and usable(codec):
                return codec
    return None
