"""AudioFormat: sizes derived from rate/channels, and which codecs rtvbp.v1 can carry."""

from __future__ import annotations

import pytest

from bridge.audio.format import AudioFormat


@pytest.mark.parametrize(
    ("rate", "channels", "frame_bytes"),
    [(8000, 1, 320), (16000, 1, 640), (24000, 1, 960), (8000, 2, 640), (48000, 2, 3840)],
)
def test_bytes_per_frame_is_20ms_of_whole_sample_blocks(rate: int, channels: int, frame_bytes: int) -> None:
    fmt = AudioFormat(rate, channels)
    assert fmt.bytes_per_frame == frame_bytes
    assert fmt.block_align == 2 * channels
    assert fmt.ms_for_bytes(fmt.bytes_per_frame) == pytest.approx(20.0)


def test_ms_and_bytes_convert_both_ways() -> None:
    fmt = AudioFormat(8000)
    assert fmt.bytes_for_ms(100) == 1600
    assert fmt.ms_for_bytes(1600) == pytest.approx(100.0)
    assert fmt.ms_for_bytes(1) == pytest.approx(1 / 16)


def test_bytes_for_ms_rounds_down_to_whole_sample_blocks() -> None:
    fmt = AudioFormat(44100, 2)  # 44.1 samples per ms
    assert fmt.bytes_for_ms(1) == 44 * 4
    assert fmt.bytes_for_ms(1) % fmt.block_align == 0


@pytest.mark.parametrize("name", ["L16", "l16"])
def test_from_codec_accepts_l16(name: str) -> None:
    fmt = AudioFormat.from_codec(name, 16000, 16, 2)
    assert (fmt.sample_rate, fmt.channels, fmt.sample_width, fmt.frame_ms) == (16000, 2, 2, 20)
    assert fmt.bytes_per_frame == 1280


@pytest.mark.parametrize(
    ("name", "rate", "bits", "channels", "complaint"),
    [
        ("PCMU", 8000, 16, 1, "codec"),
        ("L16", 8000, 8, 1, "bit depth"),
        ("L16", 8000, 16, 0, "channels"),
        ("L16", 8000, 16, 9, "channels"),
        ("L16", 0, 16, 1, "sample rate"),
        ("L16", -8000, 16, 1, "sample rate"),
        ("L16", 11025, 16, 1, "whole samples"),  # 20 ms = 220.5 samples
    ],
)
def test_from_codec_rejects_what_rtvbp_cannot_carry(
    name: str, rate: int, bits: int, channels: int, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        AudioFormat.from_codec(name, rate, bits, channels)


def test_constructor_refuses_formats_without_whole_sample_frames() -> None:
    with pytest.raises(ValueError):
        AudioFormat(11025)
    with pytest.raises(ValueError):
        AudioFormat(8000, channels=0)
