"""What generators see: schemas/asyncapi.yaml resolved by the official @asyncapi/parser (pinned in npm).

The parser drops keywords written beside a `$ref`; when the event schemas did that, every event came out
as the bare envelope (no `type` const, no `data` properties) and generated code had no event types.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from bridge.schemas import SCHEMA_DIR
from tests.contract.conftest import CONTRACT_TOOLS

EVENT_MESSAGES = {
    "sessionStarted": "session.started",
    "sessionUpdated": "session.updated",
    "dtmf": "dtmf",
    "callHangup": "call.hangup",
    "audioInfo": "audio.info",
    "playoutMark": "playout.mark",
    "audioGap": "audio.gap",
    "commandRejected": "command.rejected",
    "sessionEnded": "session.ended",
}


@pytest.fixture(scope="module")
def parsed(node: str) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(CONTRACT_TOOLS / "asyncapi-report.mjs"), str(SCHEMA_DIR / "asyncapi.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize(("message_id", "event_type"), EVENT_MESSAGES.items())
def test_every_event_payload_has_its_type_const_and_data_properties(
    parsed: dict[str, Any], message_id: str, event_type: str
) -> None:
    seen = parsed["messages"][message_id]
    schema = _schema(f"event.{event_type}")
    data = schema["$defs"][schema["properties"]["data"]["$ref"].rsplit("/", 1)[-1]]
    assert seen["type_const"] == event_type
    assert seen["properties"] == ["data", "seq", "session_id", "ts", "type"]
    assert seen["data_properties"] == sorted(data["properties"]) != []
    assert (seen["title"], seen["data_title"]) == (schema["title"], data["title"])


def test_the_parser_sees_every_event_message(parsed: dict[str, Any]) -> None:
    events = {mid for mid, seen in parsed["messages"].items() if mid in EVENT_MESSAGES}
    assert events == set(EVENT_MESSAGES)


def test_commands_chunks_and_replies_keep_their_type_const_and_title(parsed: dict[str, Any]) -> None:
    for message_id, file in (
        ("audioChunk", "audio-chunk"),
        ("audioCommand", "command.audio"),
        ("markCommand", "command.mark"),
        ("clearCommand", "command.clear"),
        ("requestCommand", "command.request"),
        ("eventCommand", "command.event"),
        ("reply", "reply"),
    ):
        schema = _schema(file)
        seen = parsed["messages"][message_id]
        assert seen["type_const"] == schema["properties"]["type"]["const"], message_id
        assert seen["title"] == schema["title"], message_id
        assert seen["properties"] == sorted(schema["properties"]), message_id


def test_every_reply_result_is_a_named_component_schema(parsed: dict[str, Any]) -> None:
    results = _schema("results")["$defs"]
    assert set(parsed["schemas"]) == set(results)
    for name, seen in parsed["schemas"].items():
        assert seen == {"title": name, "properties": sorted(results[name].get("properties", {}))}
