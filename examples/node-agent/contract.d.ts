/* eslint-disable */
// Generated from schemas/ by scripts/contract/gen-ts.mjs: do not edit; run `make contract-types`.
// msgpack `bin` values (audio) are Uint8Array; decode with @msgpack/msgpack.

/**
 * Any application-to-voice event of babelforce.v1, sent to the voice as-is. Reply result: EventResult (results.schema.json). Publish to exchange `rtvbp.commands` with routing key `<session>`; optional AMQP `reply_to` and `correlation_id` get a `reply`.
 */
export type EventCommand = {
  [k: string]: unknown;
} & {
  type: "event";
  event:
    | "audio.speech.started"
    | "input.transcript"
    | "output.transcript.delta"
    | "output.transcript.done"
    | "agent.tool.call";
  /**
   * Absent = `{}`.
   */
  data?: {
    [k: string]: unknown;
  };
};
/**
 * Any application-to-voice operation of babelforce.v1; `params` is passed to the voice. Reply result: the voice's result, per method `<Method>Result` in results.schema.json (e.g. PingResult); a voice error becomes `ok: false` with the voice's code and message. Publish to exchange `rtvbp.commands` with routing key `<session>`; optional AMQP `reply_to` and `correlation_id` get a `reply`.
 */
export type RequestCommand = {
  [k: string]: unknown;
} & {
  type: "request";
  method:
    | "application.move"
    | "audio.buffer.clear"
    | "call.hangup"
    | "ping"
    | "recording.start"
    | "recording.stop"
    | "session.get"
    | "session.set";
  /**
   * Absent = `{}`.
   */
  params?: {
    [k: string]: unknown;
  };
};
/**
 * Answer to a command that had an AMQP `reply_to` (a queue or `amq.rabbitmq.reply-to`); carries the command's `correlation_id`. AMQP `type` property: `reply`. The shape of `result` depends on the command: results.schema.json.
 */
export type Reply = {
  type: "reply";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  ok: boolean;
} & (ReplyOk | ReplyFailed);

/**
 * Every message body of the rtvbp-bridge AMQP contract v1, by type name.
 */
export interface RtvbpContract {
  AudioChunk?: AudioChunk;
  AudioCommand?: AudioCommand;
  ClearCommand?: ClearCommand;
  EventCommand?: EventCommand;
  MarkCommand?: MarkCommand;
  RequestCommand?: RequestCommand;
  AudioGapEvent?: AudioGapEvent;
  AudioInfoEvent?: AudioInfoEvent;
  CallHangupEvent?: CallHangupEvent;
  CommandRejectedEvent?: CommandRejectedEvent;
  DtmfEvent?: DtmfEvent;
  PlayoutMarkEvent?: PlayoutMarkEvent;
  SessionEndedEvent?: SessionEndedEvent;
  SessionStartedEvent?: SessionStartedEvent;
  SessionUpdatedEvent?: SessionUpdatedEvent;
  Reply?: Reply;
  AppInfo?: AppInfo;
  CallInfo?: CallInfo;
  AudioCodec?: AudioCodec;
  NegotiatedAudioCodec?: NegotiatedAudioCodec;
  AudioInfoItem?: AudioInfoItem;
  ReplyError?: ReplyError;
  UpstreamEvent?: UpstreamEvent;
  BridgeHeaders?: BridgeHeaders;
  CommandHeaders?: CommandHeaders;
  ApplicationMoveResult?: ApplicationMoveResult;
  AudioBufferClearResult?: AudioBufferClearResult;
  AudioResult?: AudioResult;
  CallHangupResult?: CallHangupResult;
  ClearResult?: ClearResult;
  EventResult?: EventResult;
  MarkResult?: MarkResult;
  PingResult?: PingResult;
  RecordingStartResult?: RecordingStartResult;
  RecordingStopResult?: RecordingStopResult;
  SessionGetResult?: SessionGetResult;
  SessionSetResult?: SessionSetResult;
}
/**
 * A chunk of call audio. Exchange `rtvbp.audio`, routing key `<session>.in` (caller audio) or `<session>.out` (copy of played audio, only with BRIDGE_MIRROR_OUT=true). AMQP `type` property: `audio`.
 */
export interface AudioChunk {
  type: "audio";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  direction: "in" | "out";
  /**
   * Counts chunks of this direction from 0.
   */
  seq: number;
  /**
   * Stream position in ms of the chunk's first sample, derived from the sample count (not the wall clock).
   */
  ts: number;
  codec: NegotiatedAudioCodec;
  /**
   * msgpack bin: raw L16 little-endian bytes, whole samples.
   */
  audio: Uint8Array;
}
/**
 * The codec chosen for the session, as the bridge emits it: the offered AudioCodec plus `endianness: "little"`. Audio is always signed 16-bit little-endian PCM (L16).
 */
export interface NegotiatedAudioCodec {
  /**
   * `<name>/<sample_rate>/<channels>`, e.g. `L16/8000/1`.
   */
  id: string;
  /**
   * Codec name, e.g. `L16`.
   */
  name: string;
  /**
   * Samples per second (Hz).
   */
  sample_rate: number;
  /**
   * Bits per sample.
   */
  bit_depth: 16;
  /**
   * Number of interleaved channels.
   */
  channels: number;
  /**
   * Byte order of each sample.
   */
  endianness: "little";
}
/**
 * Audio to play to the caller, queued behind earlier audio and paced in real time. Reply result: AudioResult (results.schema.json). Publish to exchange `rtvbp.commands` with routing key `<session>`; optional AMQP `reply_to` and `correlation_id` get a `reply`.
 */
export interface AudioCommand {
  type: "audio";
  /**
   * msgpack bin: raw bytes in the negotiated format.
   */
  audio: Uint8Array;
  codec?: AudioCommandCodec;
}
/**
 * Optional: the format of `audio`; must match the negotiated codec.
 */
export interface AudioCommandCodec {
  /**
   * `<name>/<sample_rate>/<channels>`, e.g. `L16/8000/1`.
   */
  id: string;
  /**
   * Codec name, e.g. `L16`.
   */
  name: string;
  /**
   * Samples per second (Hz).
   */
  sample_rate: number;
  /**
   * Bits per sample.
   */
  bit_depth: number;
  /**
   * Number of interleaved channels.
   */
  channels: number;
  /**
   * Byte order of each sample; only `little` is accepted.
   */
  endianness?: "little";
}
/**
 * Barge-in: empty the bridge's playout queue and send `audio.buffer.clear` to the voice. Reply result: ClearResult (results.schema.json). Publish to exchange `rtvbp.commands` with routing key `<session>`; optional AMQP `reply_to` and `correlation_id` get a `reply`.
 */
export interface ClearCommand {
  type: "clear";
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "audio.speech.started".
 */
export interface AudioSpeechStartedData {
  /**
   * `sender` or `receiver`.
   */
  origin: string;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "input.transcript".
 */
export interface InputTranscriptData {
  /**
   * The complete finalised caller utterance.
   */
  delta: string;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "output.transcript.delta".
 */
export interface OutputTranscriptDeltaData {
  delta: string;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "output.transcript.done".
 */
export interface OutputTranscriptDoneData {
  /**
   * Absent = keep the accumulated deltas.
   */
  text?: string | null;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "agent.tool.call".
 */
export interface AgentToolCallData {
  name: string;
}
/**
 * Publish `playout.mark` when playout reaches this point. Reply result: MarkResult (results.schema.json). Publish to exchange `rtvbp.commands` with routing key `<session>`; optional AMQP `reply_to` and `correlation_id` get a `reply`.
 */
export interface MarkCommand {
  type: "mark";
  name: string;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "application.move".
 */
export interface ApplicationMoveParams {
  reason?: string | null;
  application_id?: string | null;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "audio.buffer.clear".
 */
export interface AudioBufferClearParams {
  [k: string]: unknown;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "call.hangup".
 */
export interface CallHangupParams {
  reason: string;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "ping".
 */
export interface PingParams {
  /**
   * Sender time, epoch ms.
   */
  t0: number;
  rtt?: number | null;
  data?: unknown;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "recording.start".
 */
export interface RecordingStartParams {
  tags?: string[] | null;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "recording.stop".
 */
export interface RecordingStopParams {
  id: string;
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "session.get".
 */
export interface SessionGetParams {
  /**
   * Empty list = all variables.
   */
  keys: string[];
}
/**
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "session.set".
 */
export interface SessionSetParams {
  data: {
    [k: string]: unknown;
  };
}
/**
 * Audio the bridge had to drop (nothing is lost silently). Exchange `rtvbp.events`, routing key `<session>.audio.gap`.
 */
export interface AudioGapEvent {
  type: "audio.gap";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * Counts every upstream event of the session from 0 (`session.started` is 0); a gap means a lost event.
   */
  seq: number;
  /**
   * Epoch ms when the bridge produced the event.
   */
  ts: number;
  data: AudioGapData;
}
/**
 * `data` of the audio.gap event.
 *
 * This interface was referenced by `AudioGapEvent`'s JSON-Schema
 * via the `definition` "AudioGapData".
 */
export interface AudioGapData {
  /**
   * `in` caller audio, `out` played audio.
   */
  direction: "in" | "out";
  /**
   * As of the first dropped chunk: `broker_unavailable` (disconnected, or blocking publishers in a resource alarm), `buffer_overflow` (connected but not confirming fast enough); `publish_failed` is reserved.
   */
  reason: "broker_unavailable" | "buffer_overflow" | "publish_failed";
  /**
   * Audio chunks of this direction dropped in this run (seqs first_seq..last_seq).
   */
  dropped_chunks: number;
  /**
   * Audio bytes in those chunks.
   */
  dropped_bytes: number;
  /**
   * Duration of those bytes at the session codec, in ms (rounded down).
   */
  dropped_ms: number;
  /**
   * First dropped chunk seq, when known.
   */
  first_seq?: number;
  /**
   * Last dropped chunk seq, when known.
   */
  last_seq?: number;
}
/**
 * Periodic throughput counters from the voice; payload unchanged. Diagnostic only. Exchange `rtvbp.events`, routing key `<session>.audio.info`.
 */
export interface AudioInfoEvent {
  type: "audio.info";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * Counts every upstream event of the session from 0 (`session.started` is 0); a gap means a lost event.
   */
  seq: number;
  /**
   * Epoch ms when the bridge produced the event.
   */
  ts: number;
  data: AudioInfoData;
}
/**
 * `data` of the audio.info event.
 *
 * This interface was referenced by `AudioInfoEvent`'s JSON-Schema
 * via the `definition` "AudioInfoData".
 */
export interface AudioInfoData {
  read: AudioInfoItem;
  write: AudioInfoItem;
}
/**
 * babelforce.v1 AudioInfoItem: throughput counters for one direction.
 */
export interface AudioInfoItem {
  /**
   * Bytes in the last reporting interval.
   */
  bytes: number;
  /**
   * Rate over the last interval.
   */
  bytes_per_second: number;
  /**
   * Bytes since the session started.
   */
  bytes_total: number;
}
/**
 * The voice reports that the telephone call ended; payload unchanged (`reason` optional). Exchange `rtvbp.events`, routing key `<session>.call.hangup`.
 */
export interface CallHangupEvent {
  type: "call.hangup";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * Counts every upstream event of the session from 0 (`session.started` is 0); a gap means a lost event.
   */
  seq: number;
  /**
   * Epoch ms when the bridge produced the event.
   */
  ts: number;
  data: CallHangupData;
}
/**
 * `data` of the call.hangup event.
 *
 * This interface was referenced by `CallHangupEvent`'s JSON-Schema
 * via the `definition` "CallHangupData".
 */
export interface CallHangupData {
  reason?: string | null;
}
/**
 * A command failed and had no `reply_to` to report it to. Exchange `rtvbp.events`, routing key `<session>.command.rejected`.
 */
export interface CommandRejectedEvent {
  type: "command.rejected";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * Counts every upstream event of the session from 0 (`session.started` is 0); a gap means a lost event.
   */
  seq: number;
  /**
   * Epoch ms when the bridge produced the event.
   */
  ts: number;
  data: CommandRejectedData;
}
/**
 * `data` of the command.rejected event.
 *
 * This interface was referenced by `CommandRejectedEvent`'s JSON-Schema
 * via the `definition` "CommandRejectedData".
 */
export interface CommandRejectedData {
  /**
   * The command's `type` as received.
   */
  command_type: string;
  /**
   * Non-zero error code. Voice codes pass through unchanged; the bridge's own: 400 bad command, 404 no bridge owns the session, 409 wrong state, 413 playout buffer full, voice not reading or command over 4 MiB, 500 internal error, 501 unknown command type, 502 invalid voice result, 503 session closed before an answer, 504 voice did not answer in time.
   */
  code: number;
  /**
   * Human-readable reason.
   */
  message: string;
  /**
   * The command's AMQP correlation_id, if it had one.
   */
  correlation_id?: string;
}
/**
 * One key press, reported by the voice after release; payload unchanged. Also guaranteed (not expressible here): `pressed_at <= released_at`. Exchange `rtvbp.events`, routing key `<session>.dtmf`.
 */
export interface DtmfEvent {
  type: "dtmf";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * Counts every upstream event of the session from 0 (`session.started` is 0); a gap means a lost event.
   */
  seq: number;
  /**
   * Epoch ms when the bridge produced the event.
   */
  ts: number;
  data: DtmfData;
}
/**
 * `data` of the dtmf event.
 *
 * This interface was referenced by `DtmfEvent`'s JSON-Schema
 * via the `definition` "DtmfData".
 */
export interface DtmfData {
  /**
   * The voice's DTMF counter (from 0), not the envelope seq.
   */
  seq: number;
  /**
   * Unix epoch time in milliseconds.
   */
  pressed_at: number;
  /**
   * Unix epoch time in milliseconds.
   */
  released_at: number;
  /**
   * `0`-`9`, `*`, `#`, ...
   */
  digit: string;
}
/**
 * Playout reached a `mark` command. Exchange `rtvbp.events`, routing key `<session>.playout.mark`.
 */
export interface PlayoutMarkEvent {
  type: "playout.mark";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * Counts every upstream event of the session from 0 (`session.started` is 0); a gap means a lost event.
   */
  seq: number;
  /**
   * Epoch ms when the bridge produced the event.
   */
  ts: number;
  data: PlayoutMarkData;
}
/**
 * `data` of the playout.mark event.
 *
 * This interface was referenced by `PlayoutMarkEvent`'s JSON-Schema
 * via the `definition` "PlayoutMarkData".
 */
export interface PlayoutMarkData {
  /**
   * The `name` of the mark command.
   */
  name: string;
  /**
   * Position in the played stream, in ms.
   */
  position_ms: number;
}
/**
 * The session is over; always the last event of a session. With reason `bridge_lost` it is published by another replica for a call whose bridge was lost without ending it: then `seq`, `duration_ms` and `counters` are absent (only the lost replica knew them) and `data.instance` names the lost replica. Exchange `rtvbp.events`, routing key `<session>.session.ended`.
 */
export interface SessionEndedEvent {
  type: "session.ended";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * Counts every upstream event of the session from 0 (`session.started` is 0); a gap means a lost event. Absent only on a `bridge_lost` end.
   */
  seq?: number;
  /**
   * Epoch ms when the bridge produced the event.
   */
  ts: number;
  data: SessionEndedData;
}
/**
 * `data` of the session.ended event.
 *
 * This interface was referenced by `SessionEndedEvent`'s JSON-Schema
 * via the `definition` "SessionEndedData".
 */
export interface SessionEndedData {
  /**
   * Why the session ended: `terminate` (the voice ended it with session.terminate), `hangup` (the caller hung up), `move` (application.move handed the call on), `disconnect` (the socket closed without a terminate), `error` (a protocol or broker failure, see `detail`), `shutdown` (the bridge drained), `bridge_lost` (the bridge serving the call was lost without ending it; published by another replica).
   */
  reason: "terminate" | "hangup" | "move" | "disconnect" | "error" | "shutdown" | "bridge_lost";
  /**
   * Free text, e.g. the terminate reason or the error.
   */
  detail?: string;
  /**
   * Milliseconds from the WebSocket upgrade to the end of the session.
   */
  duration_ms?: number;
  counters?: SessionCounters;
  /**
   * bridge_lost only: the instance id of the replica that was lost (as in its session.started).
   */
  instance?: string;
}
/**
 * Per-session counters in `session.ended`. `in` is always audio from the caller, `out` audio to the caller (chunks_out excepted: see there). Unknown counters may be added within v1.
 *
 * This interface was referenced by `SessionEndedEvent`'s JSON-Schema
 * via the `definition` "SessionCounters".
 */
export interface SessionCounters {
  /**
   * Binary WebSocket messages of caller audio received from the voice (any size; legacy voices send odd sizes).
   */
  frames_in: number;
  /**
   * Caller audio bytes received from the voice. bytes_in = bytes published on `<session>.in` + dropped_in_bytes.
   */
  bytes_in: number;
  /**
   * Caller audio chunks cut for `<session>.in` (the last `.in` seq + 1), published or dropped; published = chunks_in - dropped_in_chunks. Added in v1.1 as the clear name of chunks_out.
   */
  chunks_in: number;
  /**
   * Deprecated alias of chunks_in, always equal to it ("out" of the chunker, not audio played to the caller); removed in v2.
   */
  chunks_out: number;
  /**
   * 20 ms audio frames sent to the voice for the caller to hear (from `audio` commands; the last partial frame of a stream padded).
   */
  frames_out: number;
  /**
   * Audio bytes sent to the voice for the caller to hear (frames_out x frame size, padding included).
   */
  bytes_out: number;
  /**
   * Caller audio bytes not published: the chunks of every `audio.gap` with direction `in`, plus a trailing partial sample a broken peer may leave.
   */
  dropped_in_bytes: number;
  /**
   * Caller audio chunks not published (the sum of `dropped_chunks` of every `audio.gap` with direction `in`).
   */
  dropped_in_chunks: number;
  /**
   * Queued playout audio never sent to the voice because the session ended first (not counting what `clear` emptied, which its reply reports).
   */
  dropped_out_bytes: number;
  /**
   * Text WebSocket messages from the voice that were not a valid classic.v1 envelope.
   */
  malformed_frames: number;
  /**
   * Binary WebSocket messages the voice sent before session.initialize completed (no codec yet: dropped).
   */
  early_binary_frames: number;
  /**
   * Upstream events published for the session, this session.ended included (its seq + 1).
   */
  events_published: number;
  /**
   * Commands delivered from the session's command queue, valid or not.
   */
  commands_received: number;
  /**
   * Commands that failed (an error reply or a command.rejected event).
   */
  commands_rejected: number;
  [k: string]: number;
}
/**
 * A call was accepted; always the first event of a session (seq 0). Exchange `rtvbp.events`, routing key `<session>.session.started`.
 */
export interface SessionStartedEvent {
  type: "session.started";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * Counts every upstream event of the session from 0 (`session.started` is 0); a gap means a lost event.
   */
  seq: 0;
  /**
   * Epoch ms when the bridge produced the event.
   */
  ts: number;
  data: SessionStartedData;
}
/**
 * `data` of the session.started event.
 *
 * This interface was referenced by `SessionStartedEvent`'s JSON-Schema
 * via the `definition` "SessionStartedData".
 */
export interface SessionStartedData {
  application: AppInfo;
  call: CallInfo;
  /**
   * The codecs the voice offered, as offered.
   *
   * @minItems 1
   */
  audio_codec_offerings: [AudioCodec, ...AudioCodec[]];
  /**
   * The chosen codec.
   */
  audio_codec: NegotiatedAudioCodec;
  /**
   * The voice's free-form metadata, or nil.
   */
  metadata: {
    [k: string]: unknown;
  } | null;
  /**
   * Id of the bridge instance owning the call.
   */
  instance: string;
  /**
   * Where commands for this session go.
   */
  commands: {
    /**
     * Where to publish commands.
     */
    exchange: string;
    /**
     * Routing-key-safe session key: the session id itself when it matches this pattern, otherwise `h_` + the first 40 hex digits of SHA-256(UTF-8 id).
     */
    routing_key: string;
  };
  /**
   * Where this session's caller audio is published.
   */
  audio: {
    /**
     * Exchange carrying caller audio.
     */
    exchange: string;
    /**
     * `<session>.in`.
     */
    routing_key: string;
    /**
     * Length of each caller audio chunk (the last one may be shorter).
     */
    chunk_ms: number;
  };
}
/**
 * babelforce.v1 AppInfo: the application that owns the call flow.
 */
export interface AppInfo {
  /**
   * Application or IVR graph-node id.
   */
  id: string;
}
/**
 * babelforce.v1 CallInfo: the telephony call being bridged.
 */
export interface CallInfo {
  /**
   * Call identifier.
   */
  id: string;
  /**
   * Session id owned by the voice peer.
   */
  session_id: string;
  /**
   * Caller address or number.
   */
  from: string;
  /**
   * Callee address or number.
   */
  to: string;
}
/**
 * babelforce.v1 AudioCodec as the voice offers it (no endianness field).
 */
export interface AudioCodec {
  /**
   * `<name>/<sample_rate>/<channels>`, e.g. `L16/8000/1`.
   */
  id: string;
  /**
   * Codec name, e.g. `L16`.
   */
  name: string;
  /**
   * Samples per second (Hz).
   */
  sample_rate: number;
  /**
   * Bits per sample.
   */
  bit_depth: number;
  /**
   * Number of interleaved channels.
   */
  channels: number;
}
/**
 * The voice's `session.updated` payload, unchanged. Exchange `rtvbp.events`, routing key `<session>.session.updated`.
 */
export interface SessionUpdatedEvent {
  type: "session.updated";
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * Counts every upstream event of the session from 0 (`session.started` is 0); a gap means a lost event.
   */
  seq: number;
  /**
   * Epoch ms when the bridge produced the event.
   */
  ts: number;
  data: SessionUpdatedData;
}
/**
 * `data` of the session.updated event.
 *
 * This interface was referenced by `SessionUpdatedEvent`'s JSON-Schema
 * via the `definition` "SessionUpdatedData".
 */
export interface SessionUpdatedData {
  audio_codec: AudioCodec | null;
}
export interface ReplyOk {
  ok: true;
  /**
   * Per command type and request method: results.schema.json (e.g. AudioResult, PingResult).
   */
  result: {
    [k: string]: unknown;
  };
}
export interface ReplyFailed {
  ok: false;
  error: ReplyError;
}
/**
 * An error as carried by replies.
 */
export interface ReplyError {
  /**
   * Non-zero error code. Voice codes pass through unchanged; the bridge's own: 400 bad command, 404 no bridge owns the session, 409 wrong state, 413 playout buffer full, voice not reading or command over 4 MiB, 500 internal error, 501 unknown command type, 502 invalid voice result, 503 session closed before an answer, 504 voice did not answer in time.
   */
  code: number;
  /**
   * Human-readable reason.
   */
  message: string;
}
/**
 * Envelope of every body on the events exchange.
 */
export interface UpstreamEvent {
  /**
   * Event type; also the AMQP `type` property.
   */
  type: string;
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * Counts every upstream event of the session from 0 (`session.started` is 0); a gap means a lost event. Present on every event except a session.ended with reason bridge_lost (published by another replica, which cannot know the call's last seq).
   */
  seq?: number;
  /**
   * Epoch ms when the bridge produced the event.
   */
  ts: number;
  /**
   * Event payload; shape depends on `type`.
   */
  data: {
    [k: string]: unknown;
  };
}
/**
 * AMQP application headers on every message the bridge publishes.
 */
export interface BridgeHeaders {
  /**
   * The voice's original `call.session_id`, unchanged (the routing-key form is SessionKey).
   */
  session_id: string;
  /**
   * W3C Trace Context, on every message: the call's trace (the one the voice sent on the upgrade, or one the bridge started; sampled flag 00 when tracing is off).
   */
  traceparent: string;
  /**
   * W3C Trace Context vendor state.
   */
  tracestate?: string;
}
/**
 * AMQP application headers a consumer may put on commands.
 */
export interface CommandHeaders {
  /**
   * Optional W3C Trace Context; the bridge continues the trace.
   */
  traceparent?: string;
  /**
   * W3C Trace Context vendor state.
   */
  tracestate?: string;
}
/**
 * Result of request `application.move` (the voice's answer; the session then ends with reason `move`).
 */
export interface ApplicationMoveResult {
  /**
   * The application the call moves to; absent when the IVR flow advances normally.
   */
  next_application_id?: string;
}
/**
 * Result of request `audio.buffer.clear`.
 */
export interface AudioBufferClearResult {
  /**
   * Buffered bytes the voice discarded.
   */
  len: number;
}
/**
 * Result of an `audio` command.
 */
export interface AudioResult {
  /**
   * Bytes of this command added to the playout queue (all of them: a command is queued whole or rejected).
   */
  queued_bytes: number;
  /**
   * The call's whole playout queue after this command that is not yet sent to the voice, in ms (earlier commands included; the <= BRIDGE_PLAYOUT_LEAD_MS lead already sent is not). Added in v1.1.
   */
  backlog_ms: number;
  /**
   * Deprecated alias of backlog_ms, always equal to it; removed in v2.
   */
  queued_ms: number;
}
/**
 * Result of request `call.hangup` (the session then ends). Always `{}` today; fields may be added within v1.
 */
export interface CallHangupResult {}
/**
 * Result of a `clear` command (barge-in).
 */
export interface ClearResult {
  /**
   * Queued audio bytes the bridge dropped from its own playout queue.
   */
  bridge_bytes: number;
  /**
   * Buffered bytes the voice discarded (its `audio.buffer.clear` result `len`).
   */
  voice_bytes: number;
  /**
   * Names of the pending marks that were dropped with the audio (they will never be reported).
   */
  marks_dropped: string[];
}
/**
 * Result of an `event` command: the event was sent to the voice. Always `{}` today; fields may be added within v1.
 */
export interface EventResult {}
/**
 * Result of a `mark` command.
 */
export interface MarkResult {
  /**
   * The mark's name, as sent; `playout.mark` carries it when playout reaches it.
   */
  name: string;
}
/**
 * Result of request `ping`.
 */
export interface PingResult {
  /**
   * Echo of the request's t0 (epoch ms).
   */
  t0: number;
  /**
   * Epoch ms when the voice received the request.
   */
  t1: number;
  /**
   * Epoch ms when the voice handled it.
   */
  t2: number;
  /**
   * One-way delay t2 - t0 in ms; may be negative with skewed clocks.
   */
  owd: number;
  /**
   * Echo of the request's data, when it had one.
   */
  data?: unknown;
}
/**
 * Result of request `recording.start`.
 */
export interface RecordingStartResult {
  /**
   * Recording id, for `recording.stop`.
   */
  id: string;
}
/**
 * Result of request `recording.stop`. Always `{}` today; fields may be added within v1.
 */
export interface RecordingStopResult {}
/**
 * Result of request `session.get`: the session variables themselves (name -> value), no wrapper; all of them when `keys` was empty.
 */
export interface SessionGetResult {
  [k: string]: unknown;
}
/**
 * Result of request `session.set`. Always `{}` today; fields may be added within v1.
 */
export interface SessionSetResult {}
