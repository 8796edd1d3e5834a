"""Test-signal helpers: tones, silence, RMS and Goertzel frequency detection."""

from __future__ import annotations

import math

import pytest

from bridge.audio.signal import dominant_frequency, rms, silence, tone

CANDIDATES = [300.0, 440.0, 1000.0, 1800.0, 3000.0]


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_tone_length_and_level(rate: int) -> None:
    pcm = tone(440, 250, rate, amplitude=0.5)
    assert len(pcm) == rate // 4 * 2
    assert rms(pcm) == pytest.approx(0.5 * 32767 / math.sqrt(2), rel=0.01)


def test_silence_is_zero_samples() -> None:
    pcm = silence(100, 8000)
    assert pcm == bytes(1600)
    assert rms(pcm) == 0.0
    assert rms(b"") == 0.0


def test_rms_reads_little_endian_signed_samples() -> None:
    assert rms((-1000).to_bytes(2, "little", signed=True) * 10) == pytest.approx(1000.0)


@pytest.mark.parametrize("freq", CANDIDATES)
def test_dominant_frequency_finds_the_tone(freq: float) -> None:
    assert dominant_frequency(tone(freq, 200, 8000), 8000, CANDIDATES) == freq


def test_dominant_frequency_picks_the_louder_of_two_tones() -> None:
    a = tone(440, 200, 8000, 0.2)
    b = tone(1800, 200, 8000, 0.6)
    mixed = b"".join(
        (
            int.from_bytes(a[i : i + 2], "little", signed=True)
            + int.from_bytes(b[i : i + 2], "little", signed=True)
        ).to_bytes(2, "little", signed=True)
        for i in range(0, len(a), 2)
    )
    assert dominant_frequency(mixed, 8000, CANDIDATES) == 1800.0


def test_dominant_frequency_needs_candidates() -> None:
    with pytest.raises(ValueError):
        dominant_frequency(tone(440, 20, 8000), 8000, [])


def test_amplitude_is_a_fraction_of_full_scale() -> None:
    with pytest.raises(ValueError):
        tone(440, 20, 8000, amplitude=1.5)
