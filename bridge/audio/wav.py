"""WAV files <-> L16 little-endian PCM, for the simulator, the tap and tests.

Reads integer PCM of 8/16/24/32 bits, any channel count and rate, and converts it to the rate and
channels a call uses: sample width by byte slicing (no per-sample loop), channels by averaging (mixdown)
or duplicating (upmix), rate by linear interpolation. Linear interpolation has no anti-aliasing
filter: good for speech prompts and test tones, not for hi-fi. No numpy and no `audioop` (deprecated).
"""

from __future__ import annotations

import math
import struct
import sys
import wave
from array import array
from pathlib import Path

# Python 3.11's `wave` rejects WAVE_FORMAT_EXTENSIBLE, which ffmpeg/sox write for >16 bits or >2 channels.
_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_XOR_SIGN = bytes(b ^ 0x80 for b in range(256))  # unsigned 8-bit <-> signed 8-bit


def read_wav_as_l16(path: Path, sample_rate: int, channels: int = 1) -> bytes:
    """An integer-PCM WAV file as L16 little-endian at `sample_rate` with `channels` channels."""
    if sample_rate <= 0 or channels < 1:
        raise ValueError(f"invalid target format: {sample_rate} Hz, {channels} channel(s)")
    raw, width, src_channels, src_rate = _read_pcm(path)
    samples = _samples(_to_l16(raw, width, src_channels))
    per_channel = [samples[c::src_channels] for c in range(src_channels)]
    if src_channels != channels:
        per_channel = [_mixdown(per_channel)]  # then duplicated; channel layouts are not mapped
    if src_rate != sample_rate:
        per_channel = [_resample(chan, src_rate, sample_rate) for chan in per_channel]
    if len(per_channel) != channels:
        per_channel = per_channel * channels
    return _pcm(_interleave(per_channel))


def write_wav(path: Path, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
    """Write L16 little-endian PCM as a 16-bit PCM WAV file."""
    if len(pcm) % (2 * channels):
        raise ValueError(f"{len(pcm)} bytes is not a whole number of 16-bit {channels}-channel samples")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)


# ---- reading ---------------------------------------------------------------------------------------------


def _read_pcm(path: Path) -> tuple[bytes, int, int, int]:
    """(raw little-endian frames, sample width, channels, rate) of an integer-PCM WAV file."""
    try:
        with wave.open(str(path), "rb") as src:
            params = src.getparams()
            raw = src.readframes(params.nframes)
    except EOFError as exc:
        raise ValueError(f"{path}: truncated WAV file") from exc
    except wave.Error as exc:
        if f"unknown format: {_WAVE_FORMAT_EXTENSIBLE}" not in str(exc):
            raise ValueError(f"{path}: not an integer PCM WAV file ({exc})") from exc
        return _read_extensible(path)
    if params.sampwidth not in (1, 2, 3, 4):
        raise ValueError(f"{path}: unsupported sample width {params.sampwidth * 8} bits")
    return raw, params.sampwidth, params.nchannels, params.framerate


def _read_extensible(path: Path) -> tuple[bytes, int, int, int]:
    """Minimal RIFF walk for WAVE_FORMAT_EXTENSIBLE files holding integer PCM."""
    data = path.read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    fmt: tuple[int, int, int] | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        body = data[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 26:
                raise ValueError(f"{path}: truncated extensible fmt chunk")
            _, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            subformat = struct.unpack_from("<H", body, 24)[0]
            if subformat != _WAVE_FORMAT_PCM:
                raise ValueError(f"{path}: not integer PCM (sub-format {subformat:#06x})")
            fmt = (channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError(f"{path}: data chunk before fmt chunk")
            channels, rate, bits = fmt
            width = (bits + 7) // 8
            if width not in (1, 2, 3, 4) or channels < 1 or rate <= 0:
                raise ValueError(f"{path}: unsupported format {bits} bits, {channels} channels, {rate} Hz")
            return body, width, channels, rate
        offset += 8 + size + (size & 1)  # chunks are word aligned
    raise ValueError(f"{path}: no fmt/data chunk")


def _to_l16(raw: bytes, width: int, channels: int) -> bytes:
    """Little-endian PCM of any integer width -> 16-bit, by keeping the two most significant bytes."""
    raw = raw[: len(raw) - len(raw) % (width * channels)]
    if width == 2:
        return raw
    count = len(raw) // width
    out = bytearray(2 * count)
    if width == 1:
        out[1::2] = raw.translate(_XOR_SIGN)  # unsigned 8-bit becomes the signed high byte
    else:
        out[0::2] = raw[width - 2 :: width]
        out[1::2] = raw[width - 1 :: width]
    return bytes(out)


# ---- conversion ------------------------------------------------------------------------------------------


def _samples(pcm: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _pcm(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def _mixdown(per_channel: list[array[int]]) -> array[int]:
    if len(per_channel) == 1:
        return per_channel[0]
    count = len(per_channel)
    return array("h", [total // count for total in map(sum, zip(*per_channel, strict=True))])


def _interleave(per_channel: list[array[int]]) -> array[int]:
    if len(per_channel) == 1:
        return array("h", per_channel[0])
    channels = len(per_channel)
    out = array("h", bytes(2 * channels * len(per_channel[0])))
    for index, chan in enumerate(per_channel):
        out[index::channels] = chan
    return out


def _resample(samples: array[int], src_rate: int, dst_rate: int) -> array[int]:
    """Linear interpolation from src_rate to dst_rate, in exact integer arithmetic."""
    count = len(samples)
    if not count:
        return array("h")
    out_count = count * dst_rate // src_rate
    common = math.gcd(src_rate, dst_rate)
    step, denom = src_rate // common, dst_rate // common
    padded = array("h", samples)
    padded.append(samples[-1])  # the last output sample may interpolate past the end
    out = array("h", bytes(2 * out_count))
    for i in range(out_count):
        index, frac = divmod(i * step, denom)
        a = padded[index]
        out[i] = a + (padded[index + 1] - a) * frac // denom
    return out
