"""Consumer commands decoded into typed dataclasses, and every way a body can be wrong."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from bridge.broker.commands import (
    AudioCommand,
    BadCommand,
    ClearCommand,
    EventCommand,
    MarkCommand,
    RequestCommand,
    decode_command,
)

SESSION_CODEC = {
    "id": "L16/8000/1",
    "name": "L16",
    "sample_rate": 8000,
    "channels": 1,
    "bit_depth": 16,
    "endianness": "little",
}


def decode(body: Any, max_bytes: int = 4096) -> Any:
    return decode_command(msgpack.packb(body, use_bin_type=True), max_bytes, SESSION_CODEC)


def refusal(body: Any, max_bytes: int = 4096) -> BadCommand:
    with pytest.raises(BadCommand) as refused:
        decode(body, max_bytes)
    return refused.value


def test_each_command_type_becomes_its_dataclass() -> None:
    assert decode({"type": "audio", "audio": b"\x01\x02"}) == AudioCommand(b"\x01\x02")
    assert decode({"type": "mark", "name": "m1"}) == MarkCommand("m1")
    assert decode({"type": "clear"}) == ClearCommand()
    assert decode({"type": "request", "method": "ping", "params": {"a": 1}}) == RequestCommand(
        "ping", {"a": 1}
    )
    assert decode({"type": "event", "event": "input.transcript", "data": {"text": "hi"}}) == EventCommand(
        "input.transcript", {"text": "hi"}
    )


def test_absent_or_nil_params_and_data_are_empty_maps() -> None:
    assert decode({"type": "request", "method": "ping"}) == RequestCommand("ping", {})
    assert decode({"type": "request", "method": "ping", "params": None}) == RequestCommand("ping", {})
    assert decode({"type": "event", "event": "e", "data": None}) == EventCommand("e", {})


def test_an_audio_codec_matching_the_session_is_accepted() -> None:
    for codec in (dict(SESSION_CODEC), {"sample_rate": 8000}):
        assert decode({"type": "audio", "audio": b"\0\0", "codec": codec}) == AudioCommand(b"\0\0")


@pytest.mark.parametrize(
    ("body", "code", "command_type", "words"),
    [
        ([1, 2], 400, "unknown", "msgpack map"),
        ({"audio": b"x"}, 400, "unknown", "string 'type'"),
        ({"type": "dance"}, 501, "dance", "unknown command type"),
        ({"type": "audio"}, 400, "audio", "non-empty binary 'audio'"),
        ({"type": "audio", "audio": ""}, 400, "audio", "non-empty binary 'audio'"),
        ({"type": "audio", "audio": b"\0\0", "codec": "L16"}, 400, "audio", "codec must be a map"),
        ({"type": "audio", "audio": b"\0\0", "codec": {"sample_rate": 16000}}, 400, "audio", "not match"),
        ({"type": "mark", "name": ""}, 400, "mark", "non-empty string 'name'"),
        ({"type": "request", "params": {}}, 400, "request", "string 'method'"),
        ({"type": "event", "event": 5}, 400, "event", "string 'event'"),
    ],
)
def test_bad_bodies_are_refused_with_code_type_and_reason(
    body: Any, code: int, command_type: str, words: str
) -> None:
    refused = refusal(body)
    assert (refused.code, refused.command_type) == (code, command_type)
    assert words in refused.message


def test_audio_must_be_whole_samples_of_the_session_codec() -> None:
    raw = msgpack.packb({"type": "audio", "audio": b"\0\0\0"}, use_bin_type=True)
    with pytest.raises(BadCommand) as odd:
        decode_command(raw, 4096, SESSION_CODEC, block_align=2)
    assert odd.value.code == 400 and "not whole samples of L16/8000/1" in odd.value.message
    assert "multiple of 2 bytes" in odd.value.message
    stereo = msgpack.packb({"type": "audio", "audio": b"\0" * 6}, use_bin_type=True)
    with pytest.raises(BadCommand):
        decode_command(stereo, 4096, SESSION_CODEC, block_align=4)
    assert decode_command(stereo, 4096, SESSION_CODEC, block_align=2) == AudioCommand(b"\0" * 6)


def test_oversize_undecodable_and_too_deep_bodies() -> None:
    with pytest.raises(BadCommand) as big:
        decode_command(b"\0" * 5000, 4096)
    assert big.value.code == 413 and "4096" in big.value.message
    with pytest.raises(BadCommand) as garbage:
        decode_command(b"\xc1", 4096)
    assert garbage.value.code == 400 and "not valid msgpack" in garbage.value.message
    nested: Any = {"type": "event", "event": "e"}
    for _ in range(40):
        nested = {"data": nested}
    assert "nests too deeply" in refusal({"type": "event", "event": "e", "data": nested}).message
