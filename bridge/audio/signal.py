"""Test signals and simple measurements on L16 little-endian mono PCM, for tests and tools.

Per-sample Python loops are fine here: none of this runs on a call's audio path.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Sequence

_FULL_SCALE = 32767


def _samples(pcm: bytes) -> array[int]:
    """Signed 16-bit samples of little-endian PCM (a trailing odd byte is ignored)."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _pcm(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def tone(freq_hz: float, duration_ms: int, sample_rate: int, amplitude: float = 0.5) -> bytes:
    """A sine tone; `amplitude` is a fraction of full scale."""
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError(f"amplitude must be within [0, 1], got {amplitude}")
    count = sample_rate * duration_ms // 1000
    step = 2 * math.pi * freq_hz / sample_rate
    peak = amplitude * _FULL_SCALE
    return _pcm(array("h", [round(peak * math.sin(step * i)) for i in range(count)]))


def silence(duration_ms: int, sample_rate: int) -> bytes:
    return bytes(sample_rate * duration_ms // 1000 * 2)


def rms(pcm: bytes) -> float:
    """Root mean square in sample units (as audioop.rms); 0.0 for empty input."""
    samples = _samples(pcm)
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def goertzel_power(pcm: bytes, sample_rate: int, freq_hz: float) -> float:
    """Signal power at one frequency (Goertzel filter over the whole buffer)."""
    coeff = 2 * math.cos(2 * math.pi * freq_hz / sample_rate)
    prev = prev2 = 0.0
    for sample in _samples(pcm):
        prev, prev2 = sample + coeff * prev - prev2, prev
    return prev2 * prev2 + prev * prev - coeff * prev * prev2


def dominant_frequency(pcm: bytes, sample_rate: int, candidates: Sequence[float]) -> float:
    """The candidate frequency with the most power in `pcm`."""
    if not candidates:
        raise ValueError("no candidate frequencies given")
    return max(candidates, key=lambda freq: goertzel_power(pcm, sample_rate, freq))
