"""`audio_open` must agree exactly with what `receive_binary` does, in every state."""

from __future__ import annotations

from bridge.protocol.catalog import AudioCodec
from bridge.protocol.session import ApplicationSession, AudioIn, SessionConfig, State

CODEC = AudioCodec(id="L16/8000/1", name="L16", sample_rate=8000, bit_depth=16, channels=1)


def test_audio_open_matches_receive_binary_in_every_state() -> None:
    for state in State:
        for codec in (None, CODEC):
            session = ApplicationSession(SessionConfig(), opened_at=0.0, wall_ms=lambda: 1)
            session.state, session.codec = state, codec
            actions = session.receive_binary(b"\x00\x01")
            assert session.audio_open == (actions == [AudioIn(b"\x00\x01")]), (state, codec)
