"""The sans-I/O application session: every rule with plain function calls, no sockets, no clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.protocol.catalog import REVERSE_TERMINATE_MESSAGE, PayloadError
from bridge.protocol.envelope import Event, Request, Response, decode_frame, encode_frame
from bridge.protocol.session import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    TERMINAL_CLOSE_FALLBACK_MS,
    Action,
    Answered,
    ApplicationSession,
    AudioIn,
    Close,
    Ended,
    InitializeRequested,
    ProtocolViolation,
    Ready,
    RequestSettled,
    SendText,
    SessionConfig,
    SessionStateError,
    State,
    VoiceEvent,
)

L16_8K = {"id": "L16/8000/1", "name": "L16", "sample_rate": 8000, "bit_depth": 16, "channels": 1}
L16_16K = {"id": "L16/16000/1", "name": "L16", "sample_rate": 16000, "bit_depth": 16, "channels": 1}
WALL_MS = 1_700_000_000_500


def new_session(**config: Any) -> ApplicationSession:
    return ApplicationSession(SessionConfig(**config), opened_at=0.0, wall_ms=lambda: WALL_MS)


def request(method: str, params: Any, rid: str = "v1") -> str:
    return encode_frame(Request(rid, method, params))


def event(name: str, data: Any, eid: str = "e1") -> str:
    return encode_frame(Event(eid, name, data))


def init_params(offers: list[dict[str, Any]] | None = None, session_id: str = "s-1") -> dict[str, Any]:
    return {
        "application": {"id": "app-1"},
        "call": {"id": "c-1", "session_id": session_id, "from": "+1", "to": "+2"},
        "audio_codec_offerings": [L16_8K] if offers is None else offers,
        "metadata": {"b": 2, "a": 1},
    }


def sent(actions: list[Action]) -> list[Any]:
    return [decode_frame(a.text) for a in actions if isinstance(a, SendText)]


def of(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def ready_session(**config: Any) -> ApplicationSession:
    session = new_session(**config)
    session.receive_text(request("session.initialize", init_params()), 0.0)
    session.accept_initialize(0.0)
    session.receive_text(event("session.updated", {"audio_codec": L16_8K}), 0.0)
    assert session.state is State.READY
    return session


# ---- initialize ------------------------------------------------------------------------------------------


def test_initialize_waits_for_the_application_then_answers_with_the_offered_codec() -> None:
    session = new_session(codec_preference=("L16/16000/1", "L16/8000/1"))
    actions = session.receive_text(request("session.initialize", init_params([L16_8K, L16_16K])), 0.0)
    [asked] = of(actions, InitializeRequested)
    assert asked.codec.to_wire() == L16_16K
    assert asked.params.call.session_id == "s-1"
    assert sent(actions) == []  # nothing is answered until the application accepts
    assert session.state is State.INITIALIZING
    accepted = session.accept_initialize(0.0)
    [response] = sent(accepted)
    assert isinstance(response, Response) and response.response == "v1"
    assert response.result == {"audio_codec": L16_16K}
    assert of(accepted, Answered) == [Answered("session.initialize", 0)]
    assert session.state is State.INITIALIZED


def test_reject_initialize_answers_the_error_and_closes() -> None:
    session = new_session()
    session.receive_text(request("session.initialize", init_params()), 0.0)
    actions = session.reject_initialize(503, "broker unavailable")
    [response] = sent(actions)
    assert response.error is not None and (response.error.code, response.error.message) == (
        503,
        "broker unavailable",
    )
    assert of(actions, Close)[0].code == 1011
    ended = session.connection_lost(1011)
    assert of(ended, Ended)[0].reason == "error"


@pytest.mark.parametrize(
    ("offers", "message"),
    [
        ([], "no audio codec offerings"),
        (
            [{**L16_8K, "name": "PCMU", "id": "PCMU/8000/1", "bit_depth": 8}],
            "no acceptable audio codec offered",
        ),
        ([{**L16_8K, "sample_rate": 11025, "id": "L16/11025/1"}], "no acceptable audio codec offered"),
    ],
)
def test_unacceptable_offers_get_a_clear_400(offers: list[dict[str, Any]], message: str) -> None:
    session = new_session()
    actions = session.receive_text(request("session.initialize", init_params(offers)), 0.0)
    [response] = sent(actions)
    assert response.error.code == 400 and message in response.error.message
    assert session.state is State.AWAIT_INIT  # the voice may try again
    assert of(actions, InitializeRequested) == []


def test_go_style_null_offerings_are_an_empty_offer() -> None:
    session = new_session()
    params = init_params()
    params["audio_codec_offerings"] = None
    [response] = sent(session.receive_text(request("session.initialize", params), 0.0))
    assert response.error.code == 400 and response.error.message == "no audio codec offerings"


def test_second_initialize_is_refused_and_the_first_negotiation_kept() -> None:
    session = ready_session()
    actions = session.receive_text(request("session.initialize", init_params([L16_16K]), "v2"), 0.0)
    [response] = sent(actions)
    assert response.error.code == 500
    assert of(actions, ProtocolViolation)[0].kind == "duplicate_initialize"
    assert session.codec is not None and session.codec.sample_rate == 8000


def test_initialize_timeout_closes_with_policy_violation() -> None:
    session = new_session(init_timeout_s=10.0)
    assert session.next_deadline() == 10.0
    assert session.expire(9.9) == []
    [close] = of(session.expire(10.0), Close)
    assert close.code == CLOSE_POLICY


# ---- requests from the voice -----------------------------------------------------------------------------


def test_ping_answer_carries_receive_and_handling_times_and_echoes_data() -> None:
    session = new_session()
    t0 = WALL_MS - 30
    actions = session.receive_text(
        request("ping", {"t0": t0, "rtt": 7, "data": {"z": 1, "a": [1]}}), 0.0, WALL_MS - 5
    )
    [response] = sent(actions)
    assert response.result == {
        "t0": t0,
        "t1": WALL_MS - 5,
        "t2": WALL_MS,
        "owd": 30,
        "data": {"a": [1], "z": 1},
    }
    text = of(actions, SendText)[0].text
    assert (
        text.index('"t0"')
        < text.index('"t1"')
        < text.index('"t2"')
        < text.index('"owd"')
        < text.index('"data"')
    )
    [bare] = sent(session.receive_text(request("ping", {"t0": t0}, "v2"), 0.0))
    assert "data" not in bare.result


@pytest.mark.parametrize(
    ("method", "params", "code", "message"),
    [
        ("transport.webrtc.offer", {}, 501, "unknown method: transport.webrtc.offer"),
        ("call.hangup", {"reason": "x"}, 501, "unknown method: call.hangup"),
        ("session.terminate", {"reason": ""}, 400, "reason must contain at least 1 character(s)"),
        ("session.terminate", None, 400, "reason must contain at least 1 character(s)"),
        ("ping", {"t0": 0}, 400, "t0 must be non-zero"),
        ("ping", {"t0": "soon"}, 400, "decode ping request"),
    ],
)
def test_request_errors(method: str, params: Any, code: int, message: str) -> None:
    session = new_session()
    actions = session.receive_text(request(method, params), 0.0)
    [response] = sent(actions)
    assert response.error.code == code and message in response.error.message
    assert session.state is State.AWAIT_INIT  # errors never close
    assert of(actions, Answered)[0].code == code


def test_session_terminate_answers_then_closes_after_the_grace() -> None:
    session = ready_session(terminal_grace_ms=100)
    actions = session.receive_text(request("session.terminate", {"reason": "completed"}, "t"), 1.0)
    [response] = sent(actions)
    assert response.response == "t" and response.result == {}
    assert actions.index(of(actions, SendText)[0]) < actions.index(of(actions, Close)[0])
    assert of(actions, Close) == [Close(CLOSE_NORMAL, "Closed", 100)]
    assert of(session.connection_lost(1000), Ended)[0].reason == "terminate"


def test_caller_hangup_is_event_then_terminate_and_ends_as_hangup() -> None:
    session = ready_session()
    [voice_event] = of(session.receive_text(event("call.hangup", {}), 0.0), VoiceEvent)
    assert voice_event.name == "call.hangup" and voice_event.raw == {}
    session.receive_text(request("session.terminate", {"reason": "hangup"}, "t"), 0.0)
    assert of(session.connection_lost(1000), Ended)[0].reason == "hangup"


# ---- frames that are not valid ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{",
        '{"version":"1"}',
        '{"version":1,"id":"x","event":"dtmf"}',
        '{"version":"1","id":5,"method":"ping"}',
        "[]",
    ],
)
def test_malformed_frames_are_dropped_counted_and_never_answered(text: str) -> None:
    session = ready_session()
    actions = session.receive_text(text, 0.0)
    assert of(actions, SendText) == [] and of(actions, Close) == []
    assert of(actions, ProtocolViolation)[0].kind == "malformed_frame"
    assert session.counters.malformed_frames == 1
    assert session.state is State.READY


def test_unknown_and_invalid_events_are_ignored_and_reported() -> None:
    session = ready_session()
    assert (
        of(session.receive_text(event("future.event", {"x": 1}), 0.0), ProtocolViolation)[0].kind
        == "unknown_event"
    )
    bad_dtmf = {"seq": 0, "pressed_at": 10, "released_at": 5, "digit": "1"}
    actions = session.receive_text(event("dtmf", bad_dtmf), 0.0)
    assert of(actions, VoiceEvent) == [] and of(actions, ProtocolViolation)[0].kind == "invalid_event"


def test_binary_before_the_initialize_answer_is_dropped_then_audio_flows() -> None:
    session = new_session()
    assert of(session.receive_binary(b"\x00" * 320), ProtocolViolation)[0].kind == "early_binary"
    session.receive_text(request("session.initialize", init_params()), 0.0)
    assert of(session.receive_binary(b"\x00" * 320), ProtocolViolation)  # still waiting on the application
    session.accept_initialize(0.0)
    assert session.receive_binary(b"\x01" * 7) == [AudioIn(b"\x01" * 7)]  # any size: it is a byte stream
    assert session.counters.early_binary_frames == 2


# ---- requests to the voice -------------------------------------------------------------------------------


def test_requests_wait_for_session_updated_then_go_out_in_order() -> None:
    session = new_session()
    with pytest.raises(SessionStateError) as early:
        session.send_request("session.get", {"keys": []}, 0.0)
    assert early.value.code == 409
    session.receive_text(request("session.initialize", init_params()), 0.0)
    session.accept_initialize(0.0)
    first, held_a = session.send_request("session.get", {"keys": []}, 0.0)
    second, held_b = session.send_request("recording.start", {}, 0.0)
    assert held_a == held_b == []  # voices answer 500 "session not initialized" before session.updated
    actions = session.receive_text(event("session.updated", {"audio_codec": L16_8K}), 0.0)
    assert of(actions, Ready) == [Ready()]
    assert [(r.id, r.method) for r in sent(actions)] == [(first, "session.get"), (second, "recording.start")]


def test_request_results_errors_and_invalid_results_settle_the_request() -> None:
    session = ready_session()
    rid, _ = session.send_request("recording.start", {"tags": ["a"]}, 0.0)
    [ok] = of(session.receive_text(encode_frame(Response(rid, result={"id": "rec-1"})), 0.0), RequestSettled)
    assert (ok.ok, ok.result) == (True, {"id": "rec-1"})
    rid, _ = session.send_request("session.get", {"keys": ["x"]}, 0.0)
    from bridge.protocol.envelope import ErrorObject

    reply = Response(rid, error=ErrorObject(501, REVERSE_TERMINATE_MESSAGE))
    [refused] = of(session.receive_text(encode_frame(reply), 0.0), RequestSettled)
    assert (refused.ok, refused.code, refused.message) == (False, 501, REVERSE_TERMINATE_MESSAGE)
    assert session.state is State.READY  # an error response closes nothing
    rid, _ = session.send_request("recording.start", {}, 0.0)
    [invalid] = of(session.receive_text(encode_frame(Response(rid, result={"id": ""})), 0.0), RequestSettled)
    assert (invalid.ok, invalid.code) == (False, 502)
    stray = session.receive_text(encode_frame(Response("nobody", result={})), 0.0)
    assert of(stray, ProtocolViolation)[0].kind == "unknown_response"


def test_outbound_params_are_validated_strictly() -> None:
    session = ready_session()
    with pytest.raises(PayloadError, match="reason must contain at least 1"):
        session.send_request("call.hangup", {"reason": ""}, 0.0)
    for voice_only in ("session.initialize", "session.terminate", "no.such.method"):
        with pytest.raises(SessionStateError) as refused:
            session.send_request(voice_only, {"reason": "completed"}, 0.0)
        assert refused.value.code == 400
    # Values JSON cannot carry exactly are the caller's error, before anything is sent.
    for data in ({"blob": b"\x00"}, {"big": 2**60}):
        with pytest.raises(PayloadError):
            session.send_request("session.set", {"data": data}, 0.0)
    assert session.next_deadline() is None  # nothing refused was left pending


def test_unanswered_requests_time_out() -> None:
    session = ready_session(request_timeout_s=5.0)
    rid, _ = session.send_request("session.get", {"keys": ["a"]}, 10.0)
    assert session.next_deadline() == 15.0
    assert session.expire(14.9) == []
    [timed_out] = of(session.expire(15.0), RequestSettled)
    assert (timed_out.request_id, timed_out.code) == (rid, 504)
    assert of(
        session.receive_text(encode_frame(Response(rid, result={})), 16.0), ProtocolViolation
    )  # late: dropped


def test_terminal_request_success_closes_if_the_voice_does_not() -> None:
    session = ready_session()
    rid, _ = session.send_request("call.hangup", {"reason": "caller"}, 0.0)
    actions = session.receive_text(encode_frame(Response(rid, result={})), 0.0)
    assert of(actions, Close) == [Close(CLOSE_NORMAL, "Closed", TERMINAL_CLOSE_FALLBACK_MS)]
    # a legacy voice then sends session.terminate: still answered, and the end stays "hangup"
    legacy = session.receive_text(request("session.terminate", {"reason": "call.hangup"}, "t"), 0.0)
    assert sent(legacy)[0].result == {}
    assert of(session.connection_lost(1000), Ended)[0].reason == "hangup"


def test_a_voice_that_closes_instead_of_answering_a_terminal_request_gets_no_success() -> None:
    session = ready_session()
    rid, _ = session.send_request("application.move", {"reason": "handoff"}, 0.0)
    other, _ = session.send_request("session.get", {"keys": []}, 0.0)
    actions = session.connection_lost(1000)
    settled = {s.request_id: s for s in of(actions, RequestSettled)}
    assert not settled[rid].ok and settled[rid].code == 503
    assert settled[rid].message == "the call closed before the voice answered"
    assert not settled[other].ok and settled[other].code == 503
    [ended] = of(actions, Ended)
    assert ended.reason == "disconnect"  # not "move": nothing says the move happened
    assert "before the voice answered application.move" in ended.detail


def test_a_voice_that_hangs_up_instead_of_answering_call_hangup_ends_as_hangup() -> None:
    session = ready_session()
    rid, _ = session.send_request("call.hangup", {"reason": "done"}, 0.0)
    session.receive_text(event("call.hangup", {}), 0.0)
    actions = session.connection_lost(1000)
    [settled] = of(actions, RequestSettled)
    assert (settled.request_id, settled.ok, settled.code) == (rid, False, 503)
    assert of(actions, Ended)[0].reason == "hangup"  # the voice said so itself


def test_events_to_the_voice_are_validated_and_need_an_initialized_session() -> None:
    session = new_session()
    with pytest.raises(SessionStateError):
        session.send_event("input.transcript", {"delta": "hi"})
    session = ready_session()
    [frame] = sent(session.send_event("output.transcript.done", {}))
    assert isinstance(frame, Event) and frame.data == {}
    with pytest.raises(PayloadError):
        session.send_event("agent.tool.call", {"name": 5})
    with pytest.raises(SessionStateError):
        session.send_event("dtmf", {"digit": "1"})  # a voice event


def test_shutdown_reason_wins_over_the_move_that_implements_it() -> None:
    session = ready_session()
    session.mark_ending("shutdown", "draining")
    rid, _ = session.send_request("application.move", {"reason": "shutdown"}, 0.0)
    session.receive_text(encode_frame(Response(rid, result={})), 0.0)
    assert of(session.connection_lost(1000), Ended)[0].reason == "shutdown"


def test_a_silent_disconnect_ends_as_disconnect_and_only_once() -> None:
    session = ready_session()
    ended = of(session.connection_lost(1006, "abnormal"), Ended)
    assert ended[0].reason == "disconnect" and "1006" in ended[0].detail
    assert session.connection_lost(1006) == []
    assert session.receive_text(json.dumps({"version": "1"}), 0.0) == []
