#!/usr/bin/env node
// A minimal rtvbp-bridge consumer in Node.js: it talks to the bridge only through RabbitMQ (AMQP contract
// v1, msgpack bodies), so it stands for "any language".
//
// For every call it hears about on `*.session.started` it subscribes to that call's events and caller
// audio, echoes the first --echo-ms of the caller's audio back (an `audio` command, then a `mark`), hangs
// up with a `request` `call.hangup` once the mark has been played, and prints a summary when the bridge
// reports `session.ended`. Every notable step is one JSON line on stdout; diagnostics go to stderr.
//
//   node agent.js [--prefix rtvbp] [--url amqp://...] [--echo-ms 1000]
//   env: RTVBP_PREFIX, AMQP_URL, ECHO_MS

import { createHash, randomUUID } from "node:crypto";
import { once } from "node:events";
import { parseArgs } from "node:util";

import { decode, encode } from "@msgpack/msgpack";
import amqp from "amqplib";

// Types generated from schemas/ (contract.d.ts, `make contract-types`): field names and types exactly as
// the contract defines them; `tsc --noEmit --strict` checks this file against them (npm run typecheck).
/** @typedef {import("./contract.js").SessionStartedEvent} SessionStartedEvent */
/** @typedef {import("./contract.js").SessionStartedData} SessionStartedData */
/** @typedef {import("./contract.js").SessionEndedData} SessionEndedData */
/** @typedef {import("./contract.js").PlayoutMarkData} PlayoutMarkData */
/** @typedef {import("./contract.js").CommandRejectedData} CommandRejectedData */
/** @typedef {import("./contract.js").AudioChunk} AudioChunk */
/** @typedef {import("./contract.js").AudioCommand} AudioCommand */
/** @typedef {import("./contract.js").MarkCommand} MarkCommand */
/** @typedef {import("./contract.js").RequestCommand} RequestCommand */
/** @typedef {import("./contract.js").NegotiatedAudioCodec} NegotiatedAudioCodec */
/** @typedef {import("./contract.js").ReplyError} ReplyError */
/** @typedef {import("./contract.js").AudioResult} AudioResult */
/** @typedef {AudioCommand | MarkCommand | RequestCommand} Command */
/** @typedef {{type: "reply", session_id: string, ok: boolean, result?: unknown, error?: ReplyError}} Reply */
/** @typedef {Record<string, unknown>} BodyMap */
/** @typedef {{type: string, session_id: string, seq?: number, data?: unknown}} EventEnvelope */

// RabbitMQ's direct reply-to pseudo queue: consumed in no-ack mode on the channel that publishes.
const REPLY_TO = "amq.rabbitmq.reply-to";
const ECHO_MARK = "echo-done";
const REPLY_TIMEOUT_MS = 10_000;
// After session.ended, caller audio may still be in flight on the other exchange (no cross-exchange order).
const AUDIO_GRACE_MS = 1_000;

/**
 * @param {string} event
 * @param {Record<string, unknown>} [fields]
 */
function log(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

function readOptions() {
  const { values } = parseArgs({
    options: {
      prefix: { type: "string", default: process.env.RTVBP_PREFIX ?? "rtvbp" },
      url: { type: "string", default: process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672/" },
      "echo-ms": { type: "string", default: process.env.ECHO_MS ?? "1000" },
    },
  });
  const echoMs = Number.parseInt(values["echo-ms"], 10);
  if (!Number.isInteger(echoMs) || echoMs < 20) throw new Error("--echo-ms must be an integer >= 20");
  return { prefix: values.prefix, url: values.url, echoMs };
}

/**
 * @param {unknown} value
 * @returns {value is BodyMap}
 */
function isMap(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/**
 * Decode a msgpack body into a map, or return null (never throw: a bad message must not stop the agent).
 * @param {Uint8Array} content
 * @returns {BodyMap | null}
 */
function decodeMap(content) {
  try {
    const body = decode(content);
    return isMap(body) ? body : null;
  } catch {
    return null;
  }
}

/**
 * The session.started fields this agent relies on are there (a bad message must not stop the agent).
 * @param {unknown} data
 * @returns {data is SessionStartedData}
 */
function isStartedData(data) {
  return (
    isMap(data) &&
    isMap(data.audio_codec) &&
    isMap(data.audio) &&
    typeof data.audio.routing_key === "string" &&
    isMap(data.commands) &&
    typeof data.commands.routing_key === "string"
  );
}

/** One followed call. `key` is the routing-key word (may differ from session_id, which can be any text). */
class Session {
  /**
   * @param {string} id
   * @param {string} key
   * @param {SessionStartedData} started
   */
  constructor(id, key, started) {
    this.id = id;
    this.key = key;
    this.audioExchange = started.audio.exchange;
    this.audioKey = started.audio.routing_key;
    const codec = started.audio_codec;
    this.bytesPerMs = (codec.sample_rate * ((codec.bit_depth ?? 16) / 8) * (codec.channels ?? 1)) / 1000;
    this.codec = codec;
    /** @type {Buffer[]} */
    this.kept = []; // caller audio in seq order until the echo is cut from it (not kept for the whole call)
    this.chunks = 0;
    this.bytes = 0;
    this.nextAudioSeq = 0;
    this.audioGaps = 0;
    this.audioDuplicates = 0;
    this.nextEventSeq = 1; // session.started was seq 0
    this.echoed = false;
    this.hungUp = false;
  }
}

class Agent {
  /** @param {{prefix: string, url: string, echoMs: number}} options */
  constructor({ prefix, url, echoMs }) {
    this.prefix = prefix;
    this.url = url;
    this.echoMs = echoMs;
    /** @type {Map<string, Session>} key -> Session */
    this.sessions = new Map();
    /** @type {Map<string, {resolve: (reply: Reply) => void, timer: NodeJS.Timeout}>} correlation_id -> waiter */
    this.pending = new Map();
    this.stopping = false;
    /** @type {amqp.ChannelModel | undefined} */
    this.conn = undefined;
    /** @type {amqp.Channel} */
    this.ch = /** @type {any} */ (undefined); // set by start()
    this.eventsQueue = "";
    this.audioQueue = "";
  }

  get exchanges() {
    const p = this.prefix;
    return { events: `${p}.events`, audio: `${p}.audio`, commands: `${p}.commands` };
  }

  async start() {
    const conn = await amqp.connect(this.url, { clientProperties: { connection_name: "rtvbp-node-agent" } });
    this.conn = conn;
    conn.on("error", (err) => process.stderr.write(`connection error: ${err.message}\n`));
    conn.on("close", () => this.lost("connection closed"));
    const ch = await conn.createChannel();
    this.ch = ch;
    ch.on("error", (/** @type {Error} */ err) => process.stderr.write(`channel error: ${err.message}\n`));
    ch.on("close", () => this.lost("channel closed"));

    // Same declarations as the bridge (idempotent), so it does not matter who starts first.
    const ex = this.exchanges;
    await ch.assertExchange(ex.events, "topic", { durable: true });
    await ch.assertExchange(ex.audio, "topic", { durable: true });
    // Private, server-named queues: live data is worthless later, so nothing survives this process.
    this.eventsQueue = (await ch.assertQueue("", { exclusive: true, autoDelete: true })).queue;
    this.audioQueue = (await ch.assertQueue("", { exclusive: true, autoDelete: true })).queue;
    await ch.bindQueue(this.eventsQueue, ex.events, "*.session.started");

    await ch.consume(REPLY_TO, (msg) => this.guard("reply", () => this.onReply(msg)), { noAck: true });
    await ch.consume(this.eventsQueue, (msg) => this.guard("event", () => this.onEvent(msg)), { noAck: true });
    await ch.consume(this.audioQueue, (msg) => this.guard("audio", () => this.onAudio(msg)), { noAck: true });
    log("ready", { prefix: this.prefix, events_queue: this.eventsQueue, audio_queue: this.audioQueue });
  }

  /**
   * Run a handler so that no message, however odd, can crash the process.
   * @param {string} kind
   * @param {() => unknown} handler
   */
  guard(kind, handler) {
    Promise.resolve()
      .then(handler)
      .catch((err) => {
        if (!this.stopping) log("error", { kind, message: String(err?.message ?? err) });
      });
  }

  /** @param {string} what */
  lost(what) {
    if (this.stopping) return;
    // A supervisor restarts us; our exclusive queues and bindings died with the connection anyway.
    log("fatal", { message: what });
    process.exit(1);
  }

  // ---- upstream ----------------------------------------------------------------------------------------

  /** @param {amqp.ConsumeMessage | null} msg */
  async onEvent(msg) {
    if (msg === null) return this.lost("events consumer cancelled by the broker");
    const decoded = decodeMap(msg.content);
    if (decoded === null || typeof decoded.type !== "string" || typeof decoded.session_id !== "string") {
      log("ignored", { exchange: "events", routing_key: msg.fields.routingKey, reason: "not an event body" });
      return;
    }
    const body = /** @type {EventEnvelope} */ (decoded);
    const key = msg.fields.routingKey.split(".", 1)[0];
    if (body.type === "session.started") {
      await this.follow(msg.fields.routingKey, /** @type {SessionStartedEvent} */ (/** @type {unknown} */ (decoded)));
      return;
    }
    const session = this.sessions.get(key);
    if (session === undefined) return; // a call we stopped following
    if (typeof body.seq === "number") {
      if (body.seq < session.nextEventSeq) return; // duplicate (re-published after a broker blip)
      if (body.seq > session.nextEventSeq) {
        log("event.gap", { session_id: session.id, expected_seq: session.nextEventSeq, got_seq: body.seq });
      }
      session.nextEventSeq = body.seq + 1;
    }
    if (!isMap(body.data)) return;
    const data = /** @type {unknown} */ (body.data); // the type named by body.type
    switch (body.type) {
      case "playout.mark": {
        const mark = /** @type {PlayoutMarkData} */ (data);
        log("mark.reached", { session_id: session.id, name: mark.name, position_ms: mark.position_ms });
        if (mark.name === ECHO_MARK) await this.hangup(session);
        break;
      }
      case "command.rejected": {
        const rejected = /** @type {CommandRejectedData} */ (data);
        log("command.rejected", { session_id: session.id, ...rejected });
        break;
      }
      case "session.ended":
        await this.finish(session, /** @type {SessionEndedData} */ (data));
        break;
      default:
        log("upstream", { session_id: session.id, type: body.type, seq: body.seq });
    }
  }

  /**
   * @param {string} routingKey
   * @param {SessionStartedEvent} body
   */
  async follow(routingKey, body) {
    const data = body.data;
    if (!isStartedData(data)) {
      log("ignored", { exchange: "events", routing_key: routingKey, reason: "session.started without its fields" });
      return;
    }
    if (this.sessions.has(data.commands.routing_key)) return; // a re-delivered session.started
    const session = new Session(body.session_id, data.commands.routing_key, data);
    this.sessions.set(session.key, session);
    // This call's caller audio and everything else it publishes. Nothing published before a binding exists
    // reaches us: bind `*.in` up front instead if you must never miss the first audio chunk.
    await this.ch.bindQueue(this.audioQueue, session.audioExchange, session.audioKey);
    await this.ch.bindQueue(this.eventsQueue, this.exchanges.events, `${session.key}.#`);
    log("session.started", {
      session_id: session.id,
      key: session.key,
      codec: session.codec.id,
      chunk_ms: data.audio.chunk_ms,
      instance: data.instance,
    });
  }

  /** @param {amqp.ConsumeMessage | null} msg */
  onAudio(msg) {
    if (msg === null) return this.lost("audio consumer cancelled by the broker");
    const decoded = decodeMap(msg.content);
    const session = this.sessions.get(msg.fields.routingKey.split(".", 1)[0]);
    if (decoded === null || !(decoded.audio instanceof Uint8Array) || typeof decoded.seq !== "number") {
      log("ignored", { exchange: "audio", routing_key: msg.fields.routingKey, reason: "not an audio body" });
      return;
    }
    const body = /** @type {AudioChunk} */ (/** @type {unknown} */ (decoded));
    if (session === undefined || body.direction !== "in") return;
    if (body.seq < session.nextAudioSeq) {
      session.audioDuplicates += 1;
      return;
    }
    if (body.seq > session.nextAudioSeq) {
      session.audioGaps += body.seq - session.nextAudioSeq;
      log("audio.gap", { session_id: session.id, expected_seq: session.nextAudioSeq, got_seq: body.seq });
    }
    session.nextAudioSeq = body.seq + 1;
    session.chunks += 1;
    session.bytes += body.audio.byteLength;
    if (session.echoed) return;
    session.kept.push(Buffer.from(body.audio.buffer, body.audio.byteOffset, body.audio.byteLength));
    const echoBytes = Math.round(this.echoMs * session.bytesPerMs) & ~1;
    if (session.bytes >= echoBytes) {
      session.echoed = true;
      const pcm = Buffer.concat(session.kept).subarray(0, echoBytes);
      session.kept = [];
      this.guard("echo", () => this.echo(session, pcm));
    }
  }

  /**
   * @param {Session} session
   * @param {SessionEndedData} data
   */
  async finish(session, data) {
    const counters = data.counters;
    const expected = (counters?.bytes_in ?? 0) - (counters?.dropped_in_bytes ?? 0);
    const deadline = Date.now() + AUDIO_GRACE_MS;
    while (session.bytes < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.sessions.delete(session.key);
    log("session.ended", {
      session_id: session.id,
      reason: data.reason,
      caller_bytes: session.bytes,
      caller_chunks: session.chunks,
      expected_bytes: expected,
      audio_gaps: session.audioGaps,
      audio_duplicates: session.audioDuplicates,
    });
    if (this.stopping) return;
    await this.ch.unbindQueue(this.eventsQueue, this.exchanges.events, `${session.key}.#`);
    await this.ch.unbindQueue(this.audioQueue, session.audioExchange, session.audioKey);
  }

  // ---- downstream --------------------------------------------------------------------------------------

  /**
   * @param {Session} session
   * @param {Buffer} pcm
   */
  async echo(session, pcm) {
    // Same channel, so the bridge gets audio then mark in this order; both replies are awaited after.
    const audio = this.command(session, { type: "audio", audio: new Uint8Array(pcm) });
    const mark = this.command(session, { type: "mark", name: ECHO_MARK });
    const [audioReply, markReply] = await Promise.all([audio, mark]);
    log("audio.sent", {
      session_id: session.id,
      bytes: pcm.length,
      ms: pcm.length / session.bytesPerMs,
      sha256: createHash("sha256").update(pcm).digest("hex"),
      ok: audioReply.ok && markReply.ok,
      result: audioReply.ok ? /** @type {AudioResult} */ (audioReply.result) : audioReply.error,
    });
  }

  /** @param {Session} session */
  async hangup(session) {
    if (session.hungUp) return;
    session.hungUp = true;
    /** @type {RequestCommand} */
    const request = { type: "request", method: "call.hangup", params: { reason: "completed" } };
    const reply = await this.command(session, request);
    log("reply", {
      session_id: session.id,
      method: "call.hangup",
      correlation_id: reply.correlationId,
      ok: reply.ok,
      ...(reply.ok ? { result: reply.result } : { error: reply.error }),
    });
  }

  /**
   * Publish a command for a session and resolve with the bridge's reply (rejects after a timeout).
   * @param {Session} session
   * @param {Command} body
   * @returns {Promise<Reply & {correlationId: string}>}
   */
  async command(session, body) {
    const correlationId = randomUUID();
    /** @type {Promise<Reply>} */
    const answer = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(correlationId);
        reject(new Error(`no reply to ${body.type} within ${REPLY_TIMEOUT_MS} ms (call gone?)`));
      }, REPLY_TIMEOUT_MS);
      this.pending.set(correlationId, { resolve, timer });
    });
    const sent = this.ch.publish(this.exchanges.commands, session.key, Buffer.from(encode(body)), {
      contentType: "application/msgpack",
      type: body.type,
      correlationId,
      replyTo: REPLY_TO,
    });
    if (!sent) await once(this.ch, "drain"); // the socket buffer is full: wait before publishing more
    const reply = await answer;
    return { ...reply, correlationId };
  }

  /** @param {amqp.ConsumeMessage | null} msg */
  onReply(msg) {
    if (msg === null) return this.lost("reply consumer cancelled by the broker");
    const correlationId = msg.properties.correlationId;
    const waiter = this.pending.get(correlationId ?? "");
    const body = decodeMap(msg.content);
    if (waiter === undefined || body === null || typeof body.ok !== "boolean") {
      log("ignored", { exchange: "reply-to", correlation_id: correlationId ?? null, reason: "unexpected reply" });
      return;
    }
    this.pending.delete(correlationId);
    clearTimeout(waiter.timer);
    waiter.resolve(/** @type {Reply} */ (body));
  }

  async stop() {
    if (this.stopping) return;
    this.stopping = true;
    for (const { timer } of this.pending.values()) clearTimeout(timer);
    try {
      await this.conn?.close();
    } catch {
      // already closed
    }
    log("stopped", { sessions_open: this.sessions.size });
  }
}

async function main() {
  const agent = new Agent(readOptions());
  for (const signal of ["SIGTERM", "SIGINT"]) {
    process.once(signal, () => {
      const force = setTimeout(() => process.exit(1), 3_000);
      force.unref();
      agent.stop().then(() => process.exit(0));
    });
  }
  await agent.start();
}

main().catch((err) => {
  log("fatal", { message: String(err?.message ?? err) });
  process.exit(1);
});
