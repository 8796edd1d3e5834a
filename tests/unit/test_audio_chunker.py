"""Chunker: a byte stream of any message sizes -> exact chunks stamped from the sample count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.audio.chunker import Chunk, Chunker
from bridge.audio.format import AudioFormat

MONO_8K = AudioFormat(8000)


def _stream(n: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(n))


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, offset = [], 0
    for size in sizes:
        pieces.append(data[offset : offset + size])
        offset += size
    pieces.append(data[offset:])
    return pieces


@pytest.mark.parametrize("chunk_ms", [0, -20, 30, 110])
def test_chunk_ms_must_be_a_positive_multiple_of_20(chunk_ms: int) -> None:
    with pytest.raises(ValueError, match="multiple of 20"):
        Chunker(MONO_8K, chunk_ms)


def test_frame_sized_pushes_make_one_chunk_per_chunk_ms() -> None:
    chunker = Chunker(MONO_8K, 100)
    data = _stream(320 * 12)
    out: list[list[Chunk]] = [chunker.push(data[i : i + 320]) for i in range(0, len(data), 320)]
    assert [len(c) for c in out] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]
    chunks = [c for batch in out for c in batch]
    assert [c.seq for c in chunks] == [0, 1]
    assert [c.ts_ms for c in chunks] == [0, 100]
    assert [len(c.data) for c in chunks] == [1600, 1600]
    assert b"".join(c.data for c in chunks) == data[:3200]
    assert chunker.pending_bytes == 640
    assert chunker.bytes_in == len(data)
    assert chunker.chunks_out == 2


def test_one_large_push_returns_every_complete_chunk() -> None:
    chunker = Chunker(MONO_8K, 20)
    data = _stream(320 * 3 + 100)
    chunks = chunker.push(data)
    assert [c.ts_ms for c in chunks] == [0, 20, 40]
    assert b"".join(c.data for c in chunks) == data[:960]
    assert chunker.pending_bytes == 100


def test_chunk_sized_push_into_an_empty_buffer_is_not_copied() -> None:
    chunker = Chunker(MONO_8K, 20)
    data = _stream(320)
    (chunk,) = chunker.push(data)
    assert chunk.data is data


def test_messages_splitting_samples_keep_alignment() -> None:
    fmt = AudioFormat(16000, 2)  # 4-byte sample blocks, 1280-byte frames
    chunker = Chunker(fmt, 40)
    data = _stream(2560 * 2 + 3)
    chunks = [c for piece in _split(data, [1, 2, 5, 1279, 3, 2000]) for c in chunker.push(piece)]
    assert [len(c.data) for c in chunks] == [2560, 2560]
    assert [c.ts_ms for c in chunks] == [0, 40]
    assert b"".join(c.data for c in chunks) == data[:5120]


def test_flush_returns_the_short_remainder_with_its_stream_position() -> None:
    chunker = Chunker(MONO_8K, 100)
    data = _stream(1600 * 2 + 480)
    chunks = chunker.push(data)
    last = chunker.flush()
    assert last is not None
    assert (last.seq, last.ts_ms, last.data) == (2, 200, data[3200:])
    assert chunker.pending_bytes == 0
    assert chunker.flush() is None
    assert b"".join(c.data for c in [*chunks, last]) == data


def test_flush_drops_only_a_trailing_partial_sample_and_counts_it() -> None:
    chunker = Chunker(MONO_8K, 20)
    chunker.push(_stream(101))
    last = chunker.flush()
    assert last is not None
    assert len(last.data) == 100
    assert chunker.bytes_discarded == 1


def test_flush_of_less_than_one_sample_gives_nothing() -> None:
    chunker = Chunker(MONO_8K, 20)
    chunker.push(b"\x01")
    assert chunker.flush() is None
    assert chunker.bytes_discarded == 1


@given(
    total=st.integers(min_value=0, max_value=8000),
    sizes=st.lists(st.integers(min_value=0, max_value=700), max_size=40),
    chunk_frames=st.integers(min_value=1, max_value=6),
)
def test_any_split_of_the_stream_yields_the_same_chunks(
    total: int, sizes: list[int], chunk_frames: int
) -> None:
    data = _stream(total - total % 2)
    chunker = Chunker(MONO_8K, 20 * chunk_frames)
    chunks = [c for piece in _split(data, sizes) for c in chunker.push(piece)]
    tail = chunker.flush()
    if tail is not None:
        chunks.append(tail)
    size = 320 * chunk_frames
    assert b"".join(c.data for c in chunks) == data
    assert all(len(c.data) == size for c in chunks[:-1])
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert [c.ts_ms for c in chunks] == [i * 20 * chunk_frames for i in range(len(chunks))]
