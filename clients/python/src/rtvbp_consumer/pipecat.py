"""A Pipecat transport for bridge calls, and a runner with one pipeline per call.

Install with `pip install "rtvbp-consumer[pipecat]"`. Like Pipecat's telephony transports, the call's
negotiated codec is the transport's audio format, in and out:

- input: the caller's audio as `InputAudioRawFrame`s (the call's sample rate and channels, in order,
  each byte once) and each DTMF digit as an `InputDTMFFrame`;
- output: the pipeline's audio (resampled by Pipecat to the call's rate and cut into
  `audio_out_10ms_chunks` pieces) as `audio` commands, paced in real time; an `InterruptionFrame`
  becomes `clear` (the bridge drops its queue and the voice's buffer); the pipeline's `EndFrame`
  hangs the call up once everything queued has been played;
- when the call ends from the caller's side, the transport fires `on_call_ended` and the runner
  cancels that call's pipeline.

    async def bot(transport: RtvbpTransport) -> PipelineWorker:
        return PipelineWorker(Pipeline([transport.input(), my_processor, transport.output()]))

    async with Consumer(url, prefix="rtvbp") as consumer:
        await serve(consumer, bot)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

from rtvbp_consumer.call import Call
from rtvbp_consumer.consumer import Consumer
from rtvbp_consumer.errors import CommandError
from rtvbp_consumer.events import Dtmf, SessionEnded

log = logging.getLogger("rtvbp_consumer.pipecat")
END_MARK = "pipecat-end"


def call_params(call: Call, **overrides: object) -> TransportParams:
    """TransportParams for a call: its codec in and out, no idle silence (the bridge sends none)."""
    params = TransportParams(
        audio_in_enabled=True,
        audio_in_sample_rate=call.codec.sample_rate,
        audio_in_channels=call.codec.channels,
        audio_out_enabled=True,
        audio_out_sample_rate=call.codec.sample_rate,
        audio_out_channels=call.codec.channels,
        audio_out_10ms_chunks=2,  # 20 ms pieces: the bridge's frame size, fine-grained barge-in
        audio_out_auto_silence=False,
        audio_out_end_silence_secs=0,  # the EndFrame waits for playout instead
    )
    return params.model_copy(update=overrides) if overrides else params


class RtvbpInputTransport(BaseInputTransport):
    def __init__(self, transport: RtvbpTransport, call: Call, params: TransportParams, **kwargs: object):
        super().__init__(params, **kwargs)
        self._transport = transport
        self._call = call
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if not self._tasks:
            self._tasks = [self.create_task(self._pump_audio()), self.create_task(self._pump_events())]
        await self.set_transport_ready(frame)

    async def _pump_audio(self) -> None:
        async for chunk in self._call.audio():
            codec = self._call.codec  # session.updated may change it mid-call
            await self.push_audio_frame(
                InputAudioRawFrame(audio=chunk, sample_rate=codec.sample_rate, num_channels=codec.channels)
            )

    async def _pump_events(self) -> None:
        async for event in self._call.events():
            if isinstance(event, Dtmf):
                try:
                    button = KeypadEntry(event.digit)
                except ValueError:
                    log.info("call %s: digit %r has no Pipecat key", self._call.session_id, event.digit)
                    continue
                await self.push_frame(InputDTMFFrame(button=button))
            elif isinstance(event, SessionEnded):
                await self._transport.call_ended(event)

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            await self.cancel_task(task)
        self._tasks = []

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._stop_tasks()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._stop_tasks()


class RtvbpOutputTransport(BaseOutputTransport):
    def __init__(self, call: Call, params: TransportParams, hangup_reason: str, **kwargs: object):
        super().__init__(params, **kwargs)
        self._call = call
        self._hangup_reason = hangup_reason
        self._next_send = 0.0

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._call.is_ended:
            return False
        try:
            await self._call.play(frame.audio, wait=False)
        except CommandError as exc:
            log.warning("call %s: audio not sent: %s", self._call.session_id, exc)
            return False
        # Pace at real time, as telephony transports do, so Pipecat's idea of "the bot is speaking"
        # matches what the caller hears (the bridge itself holds at most ~100 ms ahead).
        seconds = len(frame.audio) / (frame.sample_rate * frame.num_channels * 2)
        now = time.monotonic()
        self._next_send = max(self._next_send, now) + seconds
        await asyncio.sleep(max(0.0, self._next_send - now - seconds))
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame) and not self._call.is_ended:
            self._next_send = 0.0
            try:  # awaited: the next audio must not be published before the clear
                cleared = await self._call.clear()
                log.info("call %s: cleared %s", self._call.session_id, cleared)
            except CommandError as exc:
                log.warning("call %s: clear failed: %s", self._call.session_id, exc)

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)  # sends what the pipeline still had queued
        if self._call.is_ended:
            return
        with contextlib.suppress(CommandError):  # let the caller hear the end, then hang up
            await self._call.mark(END_MARK, timeout=5.0)
            await self._call.hangup(self._hangup_reason)

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        if not self._call.is_ended:
            with contextlib.suppress(CommandError):
                await self._call.hangup(self._hangup_reason)


class RtvbpTransport(BaseTransport):
    """One bridge call as a Pipecat transport. Event handlers: `on_call_ended(transport, ended)`."""

    def __init__(
        self,
        call: Call,
        params: TransportParams | None = None,
        *,
        hangup_reason: str = "pipeline ended",
        input_name: str | None = None,
        output_name: str | None = None,
    ) -> None:
        super().__init__(input_name=input_name, output_name=output_name)
        self.call = call
        self._params = params or call_params(call)
        self._input = RtvbpInputTransport(self, call, self._params, name=self._input_name)
        self._output = RtvbpOutputTransport(call, self._params, hangup_reason, name=self._output_name)
        self._register_event_handler("on_call_ended")

    def input(self) -> RtvbpInputTransport:
        return self._input

    def output(self) -> RtvbpOutputTransport:
        return self._output

    async def call_ended(self, ended: SessionEnded) -> None:
        await self._call_event_handler("on_call_ended", ended)


PipelineFactory = Callable[[RtvbpTransport], Awaitable[PipelineWorker]]


async def run_call(call: Call, factory: PipelineFactory) -> None:
    """Run one pipeline for one call until the pipeline ends or the call does."""
    transport = RtvbpTransport(call)
    worker = await factory(transport)

    @transport.event_handler("on_call_ended")  # type: ignore[untyped-decorator]
    async def _cancel(_: RtvbpTransport, ended: SessionEnded) -> None:
        log.info("call %s ended (%s): cancelling its pipeline", call.session_id, ended.reason)
        await worker.cancel(reason=f"call ended: {ended.reason}")

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


async def serve(consumer: Consumer, factory: PipelineFactory) -> None:
    """One pipeline per call from `consumer.calls()`, each in its own task, until the consumer closes."""
    async with asyncio.TaskGroup() as pipelines:
        async for call in consumer.calls():
            pipelines.create_task(_guarded(call, factory))


async def _guarded(call: Call, factory: PipelineFactory) -> None:
    try:
        await run_call(call, factory)
    except Exception:  # one failing pipeline must not end the others
        log.exception("call %s: pipeline failed", call.session_id)
        with contextlib.suppress(CommandError):
            await call.hangup("agent error")
