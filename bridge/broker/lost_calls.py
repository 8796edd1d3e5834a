"""Which calls were left behind by a lost replica: the sans-I/O core of the lost-call reaper.

Every replica writes two records per call into a durable ledger queue: `started` (when it announces
`session.started`) and `ended` (when the call is over, after its `session.ended`). One replica at a time
reads the ledger (single active consumer) and holds each live call's `started` record unacked: that
state lives on the broker, so it survives the reader's own loss (the records are redelivered to the
next active reader).

Each replica also holds an exclusive presence queue for as long as its broker connection lives. The
reader watches the presence of every replica that owns live calls; one absent for `lost_after_s` in a
row is lost, and every call it still owns is ended for its consumers with reason `bridge_lost`. The
grace covers a replica that is only reconnecting after a broker blip (its presence comes back).

This module keeps the bookkeeping and decides; the reaper does the AMQP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

RecordOp = Literal["started", "ended"]
Tag = TypeVar("Tag")  # whatever identifies a delivery to acknowledge (the reaper uses the message)

# Long enough for a replica to reconnect after a broker blip; short enough to end calls within 5 s.
LOST_AFTER_S = 3.0


class BadRecord(ValueError):
    """A ledger message that is not a record this version understands."""


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    op: RecordOp
    presence: str  # the owning replica's presence queue: unique per process lifetime
    key: str  # session key (routing-key word)
    session_id: str = ""  # original id, for the session.ended body (on `started`)
    instance: str = ""  # the replica's instance id, reported in session.ended (on `started`)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"op": self.op, "presence": self.presence, "key": self.key}
        if self.op == "started":
            wire |= {"session_id": self.session_id, "instance": self.instance}
        return wire

    @classmethod
    def from_wire(cls, body: Any) -> LedgerRecord:
        if not isinstance(body, Mapping):
            raise BadRecord("ledger record is not a map")
        op, presence, key = body.get("op"), body.get("presence"), body.get("key")
        if op not in ("started", "ended"):
            raise BadRecord(f"unknown ledger op {op!r}")
        if not (isinstance(presence, str) and presence and isinstance(key, str) and key):
            raise BadRecord("ledger record needs string 'presence' and 'key'")
        if op == "ended":
            return cls("ended", presence, key)
        session_id, instance = body.get("session_id"), body.get("instance")
        if not (isinstance(session_id, str) and session_id and isinstance(instance, str)):
            raise BadRecord("started record needs string 'session_id' and 'instance'")
        return cls("started", presence, key, session_id, instance)


@dataclass(frozen=True, slots=True)
class LostCall(Generic[Tag]):
    session_id: str
    key: str
    instance: str
    tag: Tag  # the `started` delivery, to acknowledge once session.ended is confirmed


@dataclass(slots=True)
class _Replica(Generic[Tag]):
    calls: dict[str, tuple[LedgerRecord, Tag]] = field(default_factory=dict)  # by key
    missing_since: float | None = None


class LostCallTracker(Generic[Tag]):
    """Live calls per replica (from the ledger) and each replica's presence (from observations)."""

    def __init__(self, own_presence: str, lost_after_s: float = LOST_AFTER_S) -> None:
        self.own_presence = own_presence
        self.lost_after_s = lost_after_s
        self._replicas: dict[str, _Replica[Tag]] = {}

    def record(self, record: LedgerRecord, tag: Tag) -> list[Tag]:
        """Apply one ledger record; returns the deliveries that are settled now (to acknowledge)."""
        replica = self._replicas.setdefault(record.presence, _Replica())
        if record.op == "started":
            previous = replica.calls.get(record.key)
            replica.calls[record.key] = (record, tag)
            # The same call redelivered replaces itself; a stale entry for the key is settled.
            return [previous[1]] if previous is not None and previous[1] is not tag else []
        settled = [tag]
        started = replica.calls.pop(record.key, None)
        if started is not None:
            settled.insert(0, started[1])
        if not replica.calls:
            del self._replicas[record.presence]
        return settled

    def to_check(self) -> list[str]:
        """Presence queues to look at: every other replica that owns live calls."""
        return [p for p in self._replicas if p != self.own_presence]

    def observe(self, presence: str, present: bool, now: float) -> list[LostCall[Tag]]:
        """One look at a replica's presence; returns its calls when it has been away long enough."""
        replica = self._replicas.get(presence)
        if replica is None or presence == self.own_presence:
            return []
        if present:
            replica.missing_since = None
            return []
        if replica.missing_since is None:
            replica.missing_since = now
        if now - replica.missing_since < self.lost_after_s:
            return []
        del self._replicas[presence]
        return [LostCall(r.session_id, r.key, r.instance, tag) for r, tag in replica.calls.values()]

    def reset(self) -> None:
        """Forget everything: after a reconnect the broker redelivers what is still unacked."""
        self._replicas.clear()

    def live_calls(self) -> int:
        return sum(len(r.calls) for r in self._replicas.values())
