"""This replica's side of the call ledger: a `started` record per announced call, an `ended` record after.

Both go through the control publisher, so each record is ordered with the call's own events (`started`
right behind `session.started`, `ended` right behind `session.ended`) and is confirmed like them. They are
persistent: the ledger must outlive a broker restart as much as the replicas it describes.
"""

from __future__ import annotations

from bridge.broker import messages
from bridge.broker.lost_calls import LedgerRecord
from bridge.broker.publisher import ConfirmingPublisher, Outgoing
from bridge.telemetry import Telemetry

# One reader at a time decides, in order; the others stand by to take over its unacked state.
# A quorum queue: replicated, so the ledger stays readable when its node of a RabbitMQ cluster is down
# (a classic queue would fail every replica's consuming connection restore until that node returns).
LEDGER_QUEUE_ARGS = {"x-single-active-consumer": True, "x-queue-type": "quorum"}


class CallLedger:
    def __init__(self, publisher: ConfirmingPublisher, queue: str, presence: str, instance_id: str) -> None:
        self._publisher = publisher
        self._queue = queue
        self.presence = presence
        self._instance_id = instance_id
        self._open: set[str] = set()  # keys announced here and not yet ended (one call per key per process)

    def call_started(self, key: str, session_id: str) -> None:
        self._open.add(key)
        self._write(LedgerRecord("started", self.presence, key, session_id, self._instance_id), session_id)

    def call_ended(self, key: str) -> None:
        """After the call's session.ended; a no-op for a call that was never announced here."""
        if key in self._open:
            self._open.discard(key)
            self._write(LedgerRecord("ended", self.presence, key), key)

    def _write(self, record: LedgerRecord, session_id: str) -> None:
        props = messages.properties(
            body_type=f"ledger.{record.op}",
            headers={"session_id": session_id, **Telemetry.reply_headers(None)},
        )
        props.delivery_mode = 2
        self._publisher.submit(Outgoing("", self._queue, messages.pack(record.to_wire()), props))
