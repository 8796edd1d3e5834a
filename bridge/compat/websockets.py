"""websockets internals the bridge relies on for its two per-frame paths (pinned version, see pyproject).

Caller audio, 50 messages a second per call, would cost a reader-task wake-up each (a queue and a future
inside websockets' Assembler). `HandoffConnection` offers a complete binary message to a sink right where
it is parsed, while the reader is idle; whatever the sink declines goes through the queue as usual.

Playout audio is written by a timer callback, not a task: `FrameWriter` does what `send()` does minus the
await (frame into the sans-I/O protocol, bytes onto the transport, websockets' own handling of a failed
write). Everything here is tested in tests/unit/test_compat_websockets.py against the installed version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

BinarySink = Callable[[bytes], bool]


class HandoffConnection(ServerConnection):
    """A server connection that can hand complete binary messages to a sink from the parser."""

    binary_sink: BinarySink | None = None  # None: every message goes through the reader
    binary_taken = 0  # messages the sink took (the rest went through the reader)

    def offer_binary_to(self, sink: BinarySink) -> bool:
        """Install `sink` (returns True when it took the message); False if this websockets lacks the hooks.

        The hooks are the Assembler's frame queue: `get_waiter` (set while the reader waits) and `queue`.
        Without them nothing is installed and every message keeps the queue path.
        """
        if not handoff_supported(self):
            return False
        self.binary_sink = sink
        return True

    # websockets calls this once per parsed frame (private API: `Connection.process_event`).
    def process_event(self, event: Event) -> None:
        sink = self.binary_sink
        if sink is not None and type(event) is Frame and event.opcode is Opcode.BINARY and event.fin:
            # Ordering: taken here only when the reader waits and nothing received before is still queued.
            frames = self.recv_messages.frames
            waiter = frames.get_waiter
            if waiter is not None and not waiter.done() and not frames.queue:
                data = event.data
                if sink(data if type(data) is bytes else bytes(data)):
                    self.binary_taken += 1
                    return
        super().process_event(event)


def handoff_supported(connection: ServerConnection) -> bool:
    """Whether this connection's Assembler exposes the frame-queue internals the hand-off reads."""
    frames = getattr(getattr(connection, "recv_messages", None), "frames", None)
    return hasattr(frames, "get_waiter") and hasattr(frames, "queue")


class FrameWriter:
    """Writes binary messages synchronously, one frame each, as `connection.send` would without awaiting.

    The caller checks `connection.protocol.state` is OPEN first (the check `send` makes). Created once per
    call: the bound methods are looked up here, not per write.
    """

    __slots__ = ("_connection", "_flush", "_send_binary")

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection
        self._send_binary = connection.protocol.send_binary
        self._flush = connection.send_data

    def write(self, frames: Sequence[bytes]) -> bool:
        """Queue `frames` and flush them to the transport; False if the socket broke (it is aborted)."""
        send_binary = self._send_binary
        for frame in frames:
            send_binary(frame)
        try:
            self._flush()
        except Exception as exc:  # websockets' own handling of a failed write (as in data_received)
            connection = self._connection
            connection.set_connection_exc(exc)
            connection.transport.abort()
            return False
        return True
