"""The negotiated audio format: L16 (signed 16-bit little-endian PCM), interleaved, in 20 ms frames.

Every size the audio path uses (frame bytes, chunk bytes, buffer bounds) is derived here from the
sample rate and channel count, so other rates and multi-channel audio need no special cases elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.protocol.codecs import FRAME_MS, unsupported_codec


@dataclass(frozen=True, slots=True)
class AudioFormat:
    sample_rate: int
    channels: int = 1
    sample_width: int = 2
    frame_ms: int = FRAME_MS

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {self.sample_rate}")
        if self.channels < 1:
            raise ValueError(f"channels must be at least 1, got {self.channels}")
        if self.sample_width < 1:
            raise ValueError(f"sample width must be at least 1 byte, got {self.sample_width}")
        if self.frame_ms <= 0 or (self.sample_rate * self.frame_ms) % 1000:
            raise ValueError(
                f"a {self.frame_ms} ms frame at {self.sample_rate} Hz does not hold whole samples"
            )

    @property
    def block_align(self) -> int:
        """Bytes of one sample instant across all channels (the unit audio may be cut at)."""
        return self.channels * self.sample_width

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * self.block_align

    @property
    def bytes_per_frame(self) -> int:
        return self.sample_rate * self.frame_ms // 1000 * self.block_align

    def ms_for_bytes(self, n: int) -> float:
        return n * 1000 / self.bytes_per_second

    def bytes_for_ms(self, ms: int) -> int:
        """Bytes of `ms` milliseconds, rounded down to whole sample blocks."""
        return self.sample_rate * ms // 1000 * self.block_align

    @classmethod
    def from_codec(cls, name: str, sample_rate: int, bit_depth: int, channels: int) -> AudioFormat:
        """The format of a negotiated RTVBP codec; ValueError for anything rtvbp.v1 cannot carry."""
        problem = unsupported_codec(name, sample_rate, bit_depth, channels)
        if problem is not None:
            raise ValueError(problem)
        return cls(sample_rate=sample_rate, channels=channels, sample_width=bit_depth // 8, frame_ms=FRAME_MS)
