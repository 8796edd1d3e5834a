"""The one codec rule (audio.format.unsupported_codec) as the settings, the negotiation and the
simulator's command line each apply it."""

from __future__ import annotations

import argparse

import pytest

from bridge.config import SettingsError, load_settings
from bridge.protocol.catalog import AudioCodec
from bridge.protocol.codecs import CodecKey, choose_codec, usable
from bridge.tools.simulate_cli import parse_offer


def offer(rate: int, channels: int = 1, name: str = "L16", bits: int = 16) -> AudioCodec:
    return AudioCodec(f"{name}/{rate}/{channels}", name, rate, bits, channels)


@pytest.mark.parametrize("text", ["L16/8000", "L16/8000/1/2", "L16/8k/1", "L16/-8000/1", "", "L16 /8000/1"])
def test_codec_key_parse_refuses_what_is_not_an_id(text: str) -> None:
    with pytest.raises(ValueError, match="not a codec id"):
        CodecKey.parse(text)


def test_codec_key_parse_reads_the_fields_and_ignores_the_name_case() -> None:
    key = CodecKey.parse("l16/16000/2")
    assert (key.name, key.sample_rate, key.channels, str(key)) == ("L16", 16000, 2, "L16/16000/2")
    assert key.unsupported() is None
    assert "whole samples" in (CodecKey.parse("L16/11025/1").unsupported() or "")


def test_usable_offers_are_exactly_those_the_rule_accepts() -> None:
    assert usable(offer(8000)) and usable(offer(48000, 8))
    assert not usable(offer(11025))
    assert not usable(offer(8000, 9))
    assert not usable(offer(8000, bits=8))
    assert not usable(offer(8000, name="PCMU"))


def test_choose_codec_skips_a_preferred_offer_the_rule_refuses() -> None:
    nine_channels, mono = offer(16000, 9), offer(8000)
    assert choose_codec([nine_channels, mono], ["L16/16000/9", "L16/8000/1"]) is mono


@pytest.mark.parametrize(
    ("preference", "complaint"),
    [
        ("PCMU/8000/1", "only L16"),
        ("L16/11025/1", "whole samples"),
        ("L16/8000/0", "channels"),
        ("L16/eight/1", "not a codec id"),
    ],
)
def test_settings_refuse_a_codec_preference_no_offer_could_match(preference: str, complaint: str) -> None:
    with pytest.raises(SettingsError, match=f"BRIDGE_CODEC_PREFERENCE: .*{complaint}"):
        load_settings(codec_preference=f"L16/8000/1,{preference}")


def test_settings_keep_a_valid_codec_preference_in_order() -> None:
    settings = load_settings(codec_preference="L16/16000/1, l16/8000/1")
    assert settings.codec_preference == ("L16/16000/1", "l16/8000/1")


def test_simulator_offers_any_l16_id_and_refuses_other_codecs() -> None:
    assert parse_offer(" L16/11025/2 ")["id"] == "L16/11025/2"  # the bridge's refusal is worth simulating
    with pytest.raises(argparse.ArgumentTypeError, match="L16 only"):
        parse_offer("PCMU/8000/1")
    with pytest.raises(argparse.ArgumentTypeError, match="not a codec id"):
        parse_offer("L16/8000")
