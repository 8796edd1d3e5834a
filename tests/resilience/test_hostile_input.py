"""Hostile input on the live server and over AMQP: each bad thing gets a clear error or a counted drop,
and the call (and the call next to it) carries on.

Unit-level fuzzing of the JSON wire, envelope and catalog decoders is in tests/unit/test_{wire,envelope,
catalog}.py; malformed frames, 1009, 1007, early binary and a second initialize on the live server are
in tests/integration/test_protocol_live.py; unknown command types and bad params in
tests/integration/test_downstream.py. This module adds what those do not cover.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.broker.commands import COMMAND_TYPES, BadCommand, decode_command
from bridge.config import load_settings
from bridge.protocol.envelope import Response, decode_frame
from bridge.service import Service
from tests.conftest import AMQP_URL, BridgeFactory
from tests.resilience.conftest import Bystander, audio_of, started_call
from tests.resilience.rabbit import until
from tests.support.amqp import Agent, delete_topology

# ---- hostile control frames, by construction of what the bridge must do with each ----------------------

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=8))
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)
_ENVELOPE = '{"version":"1","id":"x","method":"ping","params":%s}'

#: Frames the bridge must drop and count as malformed (no answer: there is no trustworthy id to answer).
malformed = st.one_of(
    st.text(max_size=40).filter(lambda t: not t.strip().startswith("{")),  # not a JSON object at all
    _json.filter(lambda v: not isinstance(v, dict)).map(json.dumps),  # valid JSON, not an object
    st.dictionaries(st.sampled_from(["id", "method", "event", "data", "x"]), _json, max_size=4).map(
        json.dumps  # an object without the version
    ),
    st.integers(65, 3000).map(lambda n: _ENVELOPE % ("[" * n + "]" * n)),  # nested beyond the limit
    st.integers(2**63, 10**400).map(lambda n: _ENVELOPE % f'{{"t0":{n}}}'),  # integers beyond int64
    st.sampled_from(["id", "method", "version"]).map(  # duplicate keys (peers disagree on which wins)
        lambda k: f'{{"version":"1","id":"a","method":"ping","{k}":"{"1" if k == "version" else "b"}"}}'
    ),
    st.sampled_from(
        [
            '{"version":1,"id":"a","method":"ping"}',
            '{"version":"1","id":7,"method":"ping"}',
            '{"version":"1","id":"a","method":5}',
            '{"version":"1","id":"","method":"ping"}',
            '{"version":"1","id":"a","method":"ping","params":NaN}',
            '{"version":"1","id":"a","method":"ping","params":{"t0":1e999}}',
        ]
    ),
)
#: Well-formed requests for methods nobody implements: each must be answered 501 with its own id.
unknown_requests = st.tuples(
    st.text(
        st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_characters='"\\'),
        min_size=1,
        max_size=16,
    ),
    st.from_regex(r"x-[a-z]{1,12}\.[a-z]{1,8}", fullmatch=True),
)
hostile_batch = st.lists(
    st.one_of(malformed.map(lambda f: ("drop", f)), unknown_requests.map(lambda r: ("501", r))),
    min_size=40,
    max_size=80,
)


def _frame(kind: str, item: Any, index: int) -> tuple[str, str | None]:
    if kind == "drop":
        return item, None
    rid, method = item
    rid = f"{index}-{rid}"  # unique, so every answer can be matched to its request
    return json.dumps({"version": "1", "id": rid, "method": method}), rid


async def _serve_hostile_batch(batch: list[tuple[str, Any]]) -> None:
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    service = Service(load_settings(host="127.0.0.1", port=0, exchange_prefix=prefix, amqp_url=AMQP_URL))
    await service.start()
    agent = await Agent(AMQP_URL, prefix).start()
    try:
        neighbour = await started_call(service, agent, "neighbour")
        target = await started_call(service, agent, "target")
        assert target.ws is not None
        expected: dict[str, str] = {}
        drops = 0
        for index, (kind, item) in enumerate(batch):
            text, rid = _frame(kind, item, index)
            if rid is None:
                drops += 1
            else:
                expected[rid] = text
            await target.ws.send(text)
        assert (await target.request("ping", {"t0": 1})).ok  # still serving, in order after the batch
        answers = [decode_frame(t) for t in target.texts]
        errors = {a.response: a.error for a in answers if isinstance(a, Response) and a.response in expected}
        assert set(errors) == set(expected)
        assert all(e is not None and e.code == 501 for e in errors.values())
        assert (await neighbour.request("ping", {"t0": 1})).ok
        await target.hangup()
        ended = await agent.wait_event("session.ended", "target")
        assert ended.body["data"]["counters"]["malformed_frames"] == drops
        assert ended.body["data"]["reason"] == "hangup"
        await neighbour.hangup()
        await asyncio.gather(target.close(), neighbour.close())
    finally:
        await agent.stop()
        await service.shutdown()
        await delete_topology(AMQP_URL, prefix)


@pytest.mark.broker  # a Hypothesis test cannot take the broker fixtures; it starts its own bridge
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=hostile_batch)
def test_hostile_frames_are_answered_or_counted_and_the_call_goes_on(batch: list[tuple[str, Any]]) -> None:
    asyncio.run(_serve_hostile_batch(batch))


async def test_a_text_flood_is_counted_and_answered_without_starving_other_calls(
    service: Service, agent: Agent, bystander: Bystander
) -> None:
    voice = await started_call(service, agent, "textflood")
    assert voice.ws is not None
    junk = ["{", "[]", '{"version":"1"}', "x" * 2000, '{"version":"1","id":"a","id":"b"}']
    for n in range(4000):
        await voice.ws.send(junk[n % len(junk)])
        if n % 4 == 0:
            await voice.ws.send(f'{{"version":"1","id":"p{n}","method":"ping","params":{{"t0":{n + 1}}}}}')
        if n % 100 == 99:
            # The flooding client shares the loop with the bridge and the bystander: 5000 sends in one go
            # would be the test's own stall, not the bridge's.
            await asyncio.sleep(0)
    await until(lambda: len(voice.texts) >= 1 + 1000, 15, "every flooded ping to be answered")
    answered = {decode_frame(t).response for t in voice.texts[1:]}  # type: ignore[union-attr]
    assert answered == {f"p{n}" for n in range(0, 4000, 4)}
    assert await bystander.command_round_trip() < 1.0
    await voice.hangup()
    ended = await agent.wait_event("session.ended", "textflood", timeout=10)
    assert ended.body["data"]["counters"]["malformed_frames"] == 4000
    await voice.close()
    await bystander.finish()


# ---- binary ---------------------------------------------------------------------------------------------


async def test_odd_length_audio_keeps_sample_alignment_and_accounts_for_every_byte(
    service: Service, agent: Agent
) -> None:
    voice = await started_call(service, agent, "odd")
    sizes = [1, 3, 319, 641, 2, 5, 1000, 7, 1601, 3]  # 3582 bytes: the last one is half a sample
    pieces = [bytes((n + i) % 256 for i in range(size)) for n, size in enumerate(sizes)]
    for piece in pieces:
        await voice.send_audio(piece)
    await voice.hangup()
    ended = await agent.wait_event("session.ended", "odd")
    counters = ended.body["data"]["counters"]
    sent = b"".join(pieces)
    chunks = audio_of(agent, "odd")
    delivered = b"".join(r.body["audio"] for r in chunks)
    assert all(len(r.body["audio"]) % 2 == 0 for r in chunks)  # whole samples only
    assert delivered == sent[: len(sent) - len(sent) % 2]
    assert counters["bytes_in"] == len(sent) == len(delivered) + counters["dropped_in_bytes"]
    await voice.close()


async def test_oversize_binary_closes_1009_reports_why_and_spares_the_neighbour(
    bridge_factory: BridgeFactory, agent: Agent, instance_id: str
) -> None:
    service = await bridge_factory(instance_id=instance_id, max_message_bytes=8192)
    bystander = await Bystander(service, agent).start()
    try:
        voice = await started_call(service, agent, "huge")
        await voice.send_audio(b"\x00" * 8193)
        assert await voice.wait_closed() == 1009
        ended = await agent.wait_event("session.ended", "huge")
        assert "1009" in ended.body["data"]["detail"], ended.body["data"]
        await bystander.finish()
    finally:
        await bystander.abandon()


# ---- commands over AMQP ---------------------------------------------------------------------------------


def _deep(levels: int) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "event", "event": "input.transcript", "data": {}}
    node = body["data"]
    for _ in range(levels):
        node["n"] = {}
        node = node["n"]
    return body


HOSTILE_COMMANDS: list[tuple[str, bytes, int]] = [
    ("empty body", b"", 400),
    ("never-used msgpack byte", b"\xc1", 400),
    ("truncated map", b"\x82\xa4type", 400),
    ("array header claiming 4G items", b"\xdd\xff\xff\xff\xff", 400),
    ("trailing bytes", msgpack.packb({"type": "clear"}) + b"\x00", 400),
    ("a list, not a map", msgpack.packb(["audio", b"x"]), 400),
    ("integer keys", msgpack.packb({1: "audio"}), 400),
    ("type is an ext value", msgpack.packb({"type": msgpack.ExtType(5, b"x")}), 400),
    ("type is bytes", msgpack.packb({"type": b"audio"}, use_bin_type=True), 400),
    ("nesting beyond the limit", msgpack.packb(_deep(100)), 400),
    ("audio as text", msgpack.packb({"type": "audio", "audio": "AAAA"}), 400),
    ("audio beyond the command limit", msgpack.packb({"type": "audio", "audio": b"\x00" * (5 << 20)}), 413),
    ("audio beyond the playout bound", msgpack.packb({"type": "audio", "audio": b"\x00" * (3 << 20)}), 413),
    ("a request without a method", msgpack.packb({"type": "request", "method": 7}), 400),
]


async def test_hostile_commands_get_clear_errors_and_the_call_goes_on(
    service: Service, agent: Agent, bystander: Bystander
) -> None:
    voice = await started_call(service, agent, "hostile")
    assert agent.channel is not None and agent._reply_queue is not None
    exchange = await agent.channel.get_exchange(f"{agent.prefix}.commands", ensure=False)
    for name, body, _ in HOSTILE_COMMANDS:
        await exchange.publish(
            aio_pika.Message(body, correlation_id=name, reply_to=agent._reply_queue.name),
            routing_key="hostile",
        )
    await agent.wait_for(lambda: all(name in agent.replies for name, _, _ in HOSTILE_COMMANDS), timeout=15)
    for name, _, code in HOSTILE_COMMANDS:
        reply = agent.replies[name]
        assert reply["ok"] is False and reply["error"]["code"] == code, (name, reply)
        assert reply["error"]["message"], name
    # audio that is not whole samples is refused (a half sample would shift every later one): nothing plays
    odd = await agent.command("hostile", {"type": "audio", "audio": b"\x01\x02\x03"})
    assert odd is not None and odd["ok"] is False and odd["error"]["code"] == 400, odd
    assert "not whole samples" in odd["error"]["message"]
    whole = await agent.command("hostile", {"type": "audio", "audio": b"\x01\x02\x03\x04"})
    assert whole is not None and whole["ok"], whole
    await until(lambda: len(voice.played.frames) >= 1, 5, "the whole-sample audio to play")
    assert voice.played.frames[0][:6] == b"\x01\x02\x03\x04\x00\x00"
    assert (await voice.request("ping", {"t0": 1})).ok
    await voice.hangup()
    ended = await agent.wait_event("session.ended", "hostile")
    assert ended.body["data"]["counters"]["commands_rejected"] == len(HOSTILE_COMMANDS) + 1  # + the odd audio
    await voice.close()
    await bystander.finish()


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200) | _json.map(lambda v: msgpack.packb(v, use_bin_type=True)))
def test_command_decoder_only_ever_raises_bad_command(raw: bytes) -> None:
    try:
        command = decode_command(raw, 4096)
    except BadCommand as exc:
        assert exc.code in (400, 413, 501) and str(exc)
    else:
        assert command.type in COMMAND_TYPES


@pytest.mark.parametrize("size", [4097, 1 << 20])
def test_command_decoder_refuses_oversize_bodies_before_parsing(size: int) -> None:
    with pytest.raises(BadCommand) as refused:
        decode_command(b"\x00" * size, 4096)
    assert refused.value.code == 413
