"""WAV helpers: files written here with the stdlib `wave` module (or by hand) read back as L16."""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import Sequence
from pathlib import Path

import pytest

from bridge.audio.format import AudioFormat
from bridge.audio.signal import dominant_frequency, rms
from bridge.audio.wav import read_wav_as_l16, write_wav

CANDIDATES = [250.0, 440.0, 700.0, 1000.0, 1500.0]


def _sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> list[float]:
    return [amplitude * math.sin(2 * math.pi * freq * i / rate) for i in range(int(seconds * rate))]


def _encode(value: float, width: int) -> bytes:
    """One sample in WAV integer PCM: unsigned for 8 bits, signed little-endian otherwise."""
    full = (1 << (8 * width - 1)) - 1
    if width == 1:
        return bytes([round(value * 127) + 128])
    return round(value * full).to_bytes(width, "little", signed=True)


def _frames(channels: Sequence[list[float]], width: int) -> bytes:
    return b"".join(_encode(v, width) for instant in zip(*channels, strict=True) for v in instant)


def _write(path: Path, rate: int, width: int, channels: Sequence[list[float]]) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(len(channels))
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(_frames(channels, width))
    return path


def _channel(pcm: bytes, index: int, count: int) -> bytes:
    step = 2 * count
    return b"".join(pcm[i : i + 2] for i in range(2 * index, len(pcm), step))


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_16k_stereo_of_any_width_reads_as_8k_mono(tmp_path: Path, width: int) -> None:
    wav = _write(tmp_path / "in.wav", 16000, width, [_sine(440, 0.5, 16000)] * 2)
    pcm = read_wav_as_l16(wav, 8000)
    fmt = AudioFormat(8000)
    assert abs(len(pcm) - fmt.bytes_for_ms(500)) <= fmt.bytes_per_frame
    assert len(pcm) % 2 == 0
    assert dominant_frequency(pcm, 8000, CANDIDATES) == 440.0
    assert rms(pcm) == pytest.approx(0.5 * 32767 / math.sqrt(2), rel=0.05)


def test_mixdown_averages_the_channels(tmp_path: Path) -> None:
    left, right = _sine(250, 0.4, 16000, 0.6), _sine(1000, 0.4, 16000, 0.2)
    pcm = read_wav_as_l16(_write(tmp_path / "in.wav", 16000, 3, [left, right]), 16000)
    assert dominant_frequency(pcm, 16000, CANDIDATES) == 250.0
    first = [int.from_bytes(pcm[i : i + 2], "little", signed=True) for i in range(0, 200, 2)]
    expected = [(a + b) / 2 * 32767 for a, b in zip(left[:100], right[:100], strict=True)]
    assert first == pytest.approx(expected, abs=2)


def test_mono_upmixes_to_identical_channels(tmp_path: Path) -> None:
    wav = _write(tmp_path / "in.wav", 8000, 2, [_sine(700, 0.2, 8000)])
    pcm = read_wav_as_l16(wav, 16000, channels=2)
    assert len(pcm) == 2 * 2 * 16000 // 5
    left, right = _channel(pcm, 0, 2), _channel(pcm, 1, 2)
    assert left == right
    assert dominant_frequency(left, 16000, CANDIDATES) == 700.0


def test_upsampling_interpolates_between_samples(tmp_path: Path) -> None:
    path = tmp_path / "ramp.wav"
    write_wav(path, b"".join(v.to_bytes(2, "little", signed=True) for v in (0, 1000, -1000)), 8000)
    pcm = read_wav_as_l16(path, 16000)
    assert [int.from_bytes(pcm[i : i + 2], "little", signed=True) for i in range(0, len(pcm), 2)] == [
        0,
        500,
        1000,
        0,
        -1000,
        -1000,
    ]


def test_write_then_read_at_the_same_format_is_lossless(tmp_path: Path) -> None:
    pcm = b"".join(_encode(v, 2) for v in _sine(440, 0.1, 8000)) + (-32768).to_bytes(2, "little", signed=True)
    path = tmp_path / "out.wav"
    write_wav(path, pcm, 8000)
    with wave.open(str(path), "rb") as check:
        assert (check.getnchannels(), check.getsampwidth(), check.getframerate()) == (1, 2, 8000)
    assert read_wav_as_l16(path, 8000) == pcm


def test_write_refuses_partial_samples(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_wav(tmp_path / "x.wav", b"\x00\x00\x00", 8000, channels=2)


def _extensible(
    path: Path, rate: int, width: int, channels: Sequence[list[float]], subformat: int = 1
) -> Path:
    """WAVE_FORMAT_EXTENSIBLE, as ffmpeg and sox write for >16 bits or >2 channels."""
    count, bits = len(channels), 8 * width
    fmt = struct.pack("<HHIIHH", 0xFFFE, count, rate, rate * count * width, count * width, bits)
    fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", subformat) + bytes(14)
    data = _frames(channels, width)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_extensible_24_bit_multichannel_files_are_read(tmp_path: Path) -> None:
    tone = _sine(1000, 0.3, 16000)
    wav = _extensible(tmp_path / "ext.wav", 16000, 3, [tone, tone, tone])
    pcm = read_wav_as_l16(wav, 8000)
    assert abs(len(pcm) - AudioFormat(8000).bytes_for_ms(300)) <= 320
    assert dominant_frequency(pcm, 8000, CANDIDATES) == 1000.0


def test_non_integer_pcm_is_refused(tmp_path: Path) -> None:
    floats = _extensible(tmp_path / "float.wav", 8000, 4, [_sine(440, 0.1, 8000)], subformat=3)
    with pytest.raises(ValueError, match="PCM"):
        read_wav_as_l16(floats, 8000)
    for name, content in [("junk.wav", b"not a wav file at all"), ("empty.wav", b"")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError):
            read_wav_as_l16(tmp_path / name, 8000)
