"""Names on the broker: exchanges, routing keys and the per-session command queue (AMQP contract v1)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_SAFE_SESSION = re.compile(r"[A-Za-z0-9_-]{1,128}")


def session_key(session_id: str) -> str:
    """The routing-key word for a session: the id itself when safe, else a deterministic hash of it.

    Dots would split the word for topic patterns and `#`/`*` would act as wildcards, so anything outside
    `[A-Za-z0-9_-]{1,128}` is replaced by `h_` + 40 hex digits of its SHA-256 (the body keeps the original).
    """
    if _SAFE_SESSION.fullmatch(session_id):
        return session_id
    return "h_" + hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str = "rtvbp"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def audio(self) -> str:
        return f"{self.prefix}.audio"

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def unroutable(self) -> str:
        return f"{self.prefix}.unroutable"

    @property
    def unroutable_replies(self) -> str:
        """Shared quorum queue (all replicas compete) of unroutable commands, to answer `reply_to` with 404.

        A quorum queue, so that it survives the loss of any one cluster node: a classic durable queue whose
        home node is down cannot be re-declared, and that would stall every replica's reconnect.
        """
        return f"{self.prefix}.unroutable.responder"

    @property
    def ledger(self) -> str:
        """Durable queue of every call's start and end, read by one replica at a time (lost-call reaper)."""
        return f"{self.prefix}.ledger"

    @property
    def replay(self) -> str:
        """Stream queue keeping every event and audio chunk for replay (BRIDGE_REPLAY)."""
        return f"{self.prefix}.replay"

    def presence_queue(self, token: str) -> str:
        """Exclusive queue a replica holds while its broker connection lives."""
        return f"{self.prefix}.replica.{token}"

    def session_queue(self, key: str) -> str:
        return f"{self.prefix}.session.{key}"
