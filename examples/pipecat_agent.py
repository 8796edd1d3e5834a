"""Pipecat agent: every call gets a Pipecat pipeline; no model, no network, just DTMF and tones.

Each digit the caller presses is answered with a one-second tone of its own pitch (digit d: 500 + 100*d
Hz, `*` 1600 Hz). A digit pressed while a tone is still playing barges in: the pipeline interrupts (the
transport turns that into `clear`) and the new digit's tone plays instead. `#` ends the pipeline, which
hangs up the call. Swap the DigitTones processor for STT -> LLM -> TTS services and it is a voice bot.

Needs `pip install "./clients/python[pipecat]"`. Run it next to a bridge (`make run`), then call:

    python examples/pipecat_agent.py                   # --amqp-url, --prefix
    rtvbp-bridge simulate --duration 3 --dtmf "1@0.3,2@0.8,#@2.5" --record-played out/pipecat.wav
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import sys
from array import array

from pipecat.frames.frames import EndFrame, Frame, InputDTMFFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from rtvbp_consumer import Consumer
from rtvbp_consumer.pipecat import RtvbpTransport, serve

log = logging.getLogger("pipecat_agent")


def tone_hz(digit: str) -> float:
    return 1600.0 if digit == "*" else 500.0 + 100 * int(digit)


def tone(hz: float, ms: int, rate: int) -> bytes:
    """A sine tone (half scale) as L16 little-endian mono."""
    count = rate * ms // 1000
    samples = array("h", (int(16000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(count)))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


class DigitTones(FrameProcessor):
    """Answers each digit with a tone; a new digit interrupts the tone before it; `#` ends the call."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.rate = sample_rate  # the call's rate: the transport would resample any other
        self.answered = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, InputDTMFFrame):
            await self.push_frame(frame, direction)
            return
        digit = frame.button.value
        if self.answered:
            await self.broadcast_interruption()  # barge-in: whatever still plays is cut
        if digit == "#":
            await self.push_frame(EndFrame())
            return
        self.answered += 1
        audio = tone(tone_hz(digit), 1000, self.rate)
        await self.push_frame(OutputAudioRawFrame(audio=audio, sample_rate=self.rate, num_channels=1))


async def bot(transport: RtvbpTransport) -> PipelineWorker:
    log.info("call %s: pipeline starting (%s)", transport.call.session_id, transport.call.codec)
    pipeline = Pipeline([transport.input(), DigitTones(transport.call.codec.sample_rate), transport.output()])
    return PipelineWorker(pipeline, idle_timeout_secs=None, enable_rtvi=False)


async def run(amqp_url: str, prefix: str, ready: asyncio.Event | None = None) -> None:
    async with Consumer(amqp_url, prefix) as consumer:
        log.info("pipecat agent ready on %s.*", prefix)
        if ready is not None:
            ready.set()
        await serve(consumer, bot)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("BRIDGE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument("--prefix", default=os.environ.get("BRIDGE_EXCHANGE_PREFIX", "rtvbp"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.amqp_url, args.prefix))


if __name__ == "__main__":
    main()
