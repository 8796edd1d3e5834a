"""Replica loss: a bridge process killed with SIGKILL leaves no call hanging for its consumers.

Real `rtvbp-bridge serve` processes on the real broker, sharing one exchange prefix like the replicas of
one deployment. The consumer side is the test's Agent; every bridge_lost event is validated against
schemas/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bridge.broker.lost_calls import LOST_AFTER_S
from bridge.broker.reaper import CHECK_INTERVAL_S
from bridge.schemas import validate_body
from bridge.tools.voicepeer import VoicePeer
from tests.conftest import BridgeFactory, ws_url
from tests.resilience.rabbit import _CONNECTION_NAME as CONNECTION_NAME
from tests.resilience.rabbit import close_connection, rabbitmqctl, until
from tests.support.amqp import Agent
from tests.support.process import BridgeProcess, bridge_process

PING = {"type": "request", "method": "ping", "params": {"t0": 1}}
LOST_WITHIN_S = 5.0  # the bound, from the moment the broker sees the connection die


def bridge_env(prefix: str, amqp_url: str, instance: str, **extra: str) -> dict[str, str]:
    return {
        "BRIDGE_EXCHANGE_PREFIX": prefix,
        "BRIDGE_AMQP_URL": amqp_url,
        "BRIDGE_INSTANCE_ID": instance,
        "BRIDGE_LOG_LEVEL": "WARNING",
        **extra,
    }


@contextlib.contextmanager
def replicas(
    prefix: str, amqp_url: str, tmp_path: Path, instances: list[str], **extra: str
) -> Iterator[list[BridgeProcess]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(bridge_process(bridge_env(prefix, amqp_url, instance, **extra), tmp_path))
            for instance in instances
        ]


def heartbeat_timeouts(instance: str) -> list[int]:
    """The heartbeat timeout the broker negotiated with each of this instance's connections."""
    out = rabbitmqctl("list_connections", "--no-table-headers", "client_properties", "timeout")
    found = []
    for line in out.splitlines():
        props, _, timeout = line.rpartition("\t")
        match = CONNECTION_NAME.search(props)
        if match and match.group(1).startswith(f"rtvbp-bridge {instance} "):
            found.append(int(timeout))
    return found


def lost_calls_ended(bridge: BridgeProcess) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{bridge.port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = [line.split()[-1] for line in text.splitlines() if line.startswith("rtvbp_sessions_lost_ended")]
    return float(values[0]) if values else 0.0


def kill(bridge: BridgeProcess) -> None:
    os.killpg(bridge.process.pid, signal.SIGKILL)
    bridge.process.wait(10)


async def call(bridge: BridgeProcess, agent: Agent, session: str) -> VoicePeer:
    voice = VoicePeer(bridge.ws_url, session_id=session)
    await voice.connect()
    await voice.initialize()
    await agent.wait_event("session.started", session)
    return voice


def ended(agent: Agent, session: str) -> list[dict[str, Any]]:
    return [
        r.body for r in agent.events if r.body["session_id"] == session and r.body["type"] == "session.ended"
    ]


async def wait_lost(agent: Agent, sessions: list[str], since: float) -> float:
    """Until every session has a session.ended bridge_lost; returns the seconds it took from `since`."""
    await until(
        lambda: all(any(e["data"]["reason"] == "bridge_lost" for e in ended(agent, s)) for s in sessions),
        timeout=LOST_WITHIN_S + 5,
        what="session.ended bridge_lost for every call of the lost replica",
    )
    return time.monotonic() - since


async def test_three_replicas_one_killed_each_of_its_calls_ends_once_others_untouched(
    prefix: str, amqp_url: str, agent: Agent, tmp_path: Path
) -> None:
    instances = [f"rl-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]
    env = {"BRIDGE_AMQP_HEARTBEAT_S": "5", "BRIDGE_DRAIN_TIMEOUT_S": "120", "BRIDGE_METRICS_ENABLED": "true"}
    with replicas(prefix, amqp_url, tmp_path, instances, **env) as bridges:
        victim, survivors = bridges[0], bridges[1:]
        # The heartbeat setting reaches the broker: the negotiated timeout of both of a bridge's connections.
        assert heartbeat_timeouts(instances[1]) == [5, 5]
        lost = [f"lost-{n}-{uuid.uuid4().hex[:4]}" for n in range(2)]
        kept = [f"kept-{b}-{n}-{uuid.uuid4().hex[:4]}" for b in range(2) for n in range(2)]
        normal = f"normal-{uuid.uuid4().hex[:4]}"
        voices = {s: await call(victim, agent, s) for s in [*lost, normal]}
        voices |= {s: await call(survivors[i // 2], agent, s) for i, s in enumerate(kept)}
        # A call the doomed replica ended normally is settled: it must never be reported lost.
        await voices[normal].hangup()
        assert (await agent.wait_event("session.ended", normal)).body["data"]["reason"] == "hangup"
        # The victim is draining (SIGTERM, long drain timeout) when it dies: its calls are covered too.
        victim.terminate()
        await until(lambda: victim.http("/readyz") == 503, timeout=10, what="the victim to start draining")
        killed_at = time.monotonic()
        kill(victim)
        took = await wait_lost(agent, lost, killed_at)
        assert took < LOST_WITHIN_S, f"bridge_lost after {took:.1f} s"
        for session in lost:
            (event,) = [e for e in ended(agent, session) if e["data"]["reason"] == "bridge_lost"]
            validate_body(event, kind="event")
            assert event["session_id"] == session
            assert event["data"]["instance"] == started_instance(agent, session)
            assert "counters" not in event["data"] and "seq" not in event
            # Commands for the lost call are answered 404 as for any call no bridge owns.
            reply = await agent.command(session, PING, timeout=5)
            assert reply is not None and reply["error"]["code"] == 404, reply
        # The other replicas' calls go on: commands answered, then a normal end.
        for session in kept:
            reply = await agent.command(session, PING, timeout=5)
            assert reply is not None and reply["ok"], reply
            await voices[session].hangup()
        for session in kept:
            assert (await agent.wait_event("session.ended", session)).body["data"]["reason"] == "hangup"
        # Exactly once: by now (later calls ended after them) no second session.ended for any call.
        assert [len(ended(agent, s)) for s in [*lost, normal, *kept]] == [1] * (len(lost) + 1 + len(kept))
        assert sum(lost_calls_ended(b) for b in survivors) == len(lost)  # and the metric says who did it
        for voice in voices.values():
            await voice.close()
        print(f"\nreplica killed -> bridge_lost for its {len(lost)} calls after {took:.2f} s")


def started_instance(agent: Agent, session: str) -> str:
    started = [
        r.body
        for r in agent.events
        if r.body["session_id"] == session and r.body["type"] == "session.started"
    ]
    return str(started[0]["data"]["instance"])


async def test_the_only_replica_killed_its_calls_are_ended_by_the_next_one_to_start(
    prefix: str, amqp_url: str, agent: Agent, tmp_path: Path
) -> None:
    sessions = [f"alone-{n}-{uuid.uuid4().hex[:4]}" for n in range(2)]
    with replicas(prefix, amqp_url, tmp_path, [f"rl-{uuid.uuid4().hex[:6]}-only"]) as (only,):
        voices = [await call(only, agent, s) for s in sessions]
        kill(only)
    assert all(ended(agent, s) == [] for s in sessions)  # nobody left to tell them
    spawned = time.monotonic()
    with replicas(prefix, amqp_url, tmp_path, [f"rl-{uuid.uuid4().hex[:6]}-next"]):
        up = time.monotonic()
        took = await wait_lost(agent, sessions, up)
        assert took < LOST_WITHIN_S, f"bridge_lost {took:.1f} s after the new replica was up"
        for session in sessions:
            (event,) = ended(agent, session)
            validate_body(event, kind="event")
            assert event["data"]["instance"] == started_instance(agent, session)
    for voice in voices:
        await voice.close()
    print(f"\nnew replica up {up - spawned:.2f} s after spawn; stale calls ended {took:.2f} s after that")


async def test_a_replica_that_reconnects_after_a_broker_blip_is_not_reported_lost(
    bridge_factory: BridgeFactory, agent: Agent
) -> None:
    tag = uuid.uuid4().hex[:6]
    blipped, watcher = (
        await bridge_factory(instance_id=f"blip-{tag}"),
        await bridge_factory(instance_id=f"watch-{tag}"),
    )
    session = f"blip-{tag}"
    voice = VoicePeer(ws_url(blipped), session_id=session)
    await voice.connect()
    await voice.initialize()
    await agent.wait_event("session.started", session)
    # The broker drops the replica's consuming connection: its presence (and command queue) vanish.
    assert await close_connection(f"rtvbp-bridge blip-{tag} consume") == 1
    blip = time.monotonic()
    await until(lambda: blipped.broker.reconnects >= 1, 10, "the blipped replica to reconnect")
    assert (await agent.command(session, PING, timeout=5) or {}).get("ok")
    # Both replicas' readers have looked again after the grace would have run out: nobody reported it lost.
    past_grace = blip + LOST_AFTER_S + CHECK_INTERVAL_S
    await until(
        lambda: min(s.broker.reaper.checked_at for s in (blipped, watcher)) > past_grace,
        10,
        "a check after the grace",
    )
    await voice.hangup()
    await voice.close()
    assert (await agent.wait_event("session.ended", session)).body["data"]["reason"] == "hangup"
    assert [e["data"]["reason"] for e in ended(agent, session)] == ["hangup"]
    assert watcher.broker.reaper.calls_reaped == blipped.broker.reaper.calls_reaped == 0
