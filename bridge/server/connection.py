"""The server's WebSocket connection: caller audio is handled where it is parsed, not in a reader task.

websockets hands every message to the reader task through a queue and a future. For caller audio, 50
messages a second per call, that wake-up costs more than handling the audio itself. So while the reader
is idle (waiting for a message, nothing queued), a complete binary message is offered to `binary_sink`
right in `data_received`; whatever the sink declines goes through the queue as usual. Ordering is
unchanged: a message is taken here only when everything received before it has already been read.
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

BinarySink = Callable[[bytes], bool]


class BridgeConnection(ServerConnection):
    binary_sink: BinarySink | None = None
    binary_taken = 0  # messages the sink took (the rest went through the reader)

    def offer_binary_to(self, sink: BinarySink) -> bool:
        """Install `sink` (returns True when it took the message); False if this websockets lacks the hooks.

        It relies on websockets' Assembler internals (pinned version); without them the queue path stays.
        """
        frames = getattr(getattr(self, "recv_messages", None), "frames", None)
        if not (hasattr(frames, "get_waiter") and hasattr(frames, "queue")):
            return False
        self.binary_sink = sink
        return True

    def process_event(self, event: Event) -> None:
        sink = self.binary_sink
        if sink is not None and type(event) is Frame and event.opcode is Opcode.BINARY and event.fin:
            frames = self.recv_messages.frames
            waiter = frames.get_waiter
            if waiter is not None and not waiter.done() and not frames.queue:
                data = event.data
                if sink(data if type(data) is bytes else bytes(data)):
                    self.binary_taken += 1
                    return
        super().process_event(event)
