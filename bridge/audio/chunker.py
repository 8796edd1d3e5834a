"""Caller audio -> fixed-length chunks for AMQP.

Inbound audio is a byte stream: legacy voices send whatever <= 320 bytes a read returned, so message
boundaries mean nothing and may even split a sample. The chunker buffers bytes and cuts chunks of exactly
`chunk_ms` (whole sample blocks), stamping each with its stream position derived from the sample count,
so timestamps never drift with the wall clock or with how the peer split its messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.audio.format import AudioFormat


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int
    ts_ms: int  # stream position of the first sample, from the sample count
    data: bytes


class Chunker:
    __slots__ = ("_buf", "_chunk_bytes", "_fmt", "bytes_discarded", "bytes_in", "chunks_out")

    def __init__(self, fmt: AudioFormat, chunk_ms: int) -> None:
        if chunk_ms <= 0 or chunk_ms % fmt.frame_ms:
            raise ValueError(f"chunk_ms must be a positive multiple of {fmt.frame_ms}, got {chunk_ms}")
        self._fmt = fmt
        self._chunk_bytes = fmt.bytes_for_ms(chunk_ms)
        self._buf = bytearray()
        self.bytes_in = 0
        self.chunks_out = 0
        # A trailing partial sample block at flush (only a broken peer sends one) cannot be played.
        self.bytes_discarded = 0

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    @property
    def chunk_bytes(self) -> int:
        return self._chunk_bytes

    def push(self, data: bytes) -> list[Chunk]:
        """Take any number of bytes; return the chunks they complete (usually none or one)."""
        self.bytes_in += len(data)
        size = self._chunk_bytes
        buf = self._buf
        if not buf and len(data) == size:
            # Fast path (peer already sends chunk-sized messages): no buffering, no copy of a bytes object.
            return [self._chunk(bytes(data))]
        buf += data
        count = len(buf) // size
        if not count:
            return []
        with memoryview(buf) as view:
            chunks = [self._chunk(bytes(view[i : i + size])) for i in range(0, count * size, size)]
        del buf[: count * size]
        return chunks

    def flush(self) -> Chunk | None:
        """At session end: whatever whole sample blocks are left, as a possibly short last chunk."""
        buf = self._buf
        usable = len(buf) - len(buf) % self._fmt.block_align
        self.bytes_discarded += len(buf) - usable
        chunk = self._chunk(bytes(buf[:usable])) if usable else None
        buf.clear()
        return chunk

    def _chunk(self, data: bytes) -> Chunk:
        fmt = self._fmt
        samples_before = self.chunks_out * self._chunk_bytes // fmt.block_align
        chunk = Chunk(seq=self.chunks_out, ts_ms=samples_before * 1000 // fmt.sample_rate, data=data)
        self.chunks_out += 1
        return chunk
