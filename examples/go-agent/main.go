// A minimal rtvbp-bridge consumer in Go: it talks to the bridge only through RabbitMQ (AMQP contract v1,
// msgpack bodies), decoding every body into the structs generated from schemas/ (contract_types.go).
//
// For every call it hears about on `*.session.started` it follows that call's events and caller audio,
// echoes each caller audio chunk straight back (an `audio` command), answers every DTMF digit with a
// `ping` request and prints the typed reply, and prints a summary when the bridge reports
// `session.ended`. Every notable step is one JSON line on stdout; diagnostics go to stderr.
//
//	go-agent [-prefix rtvbp] [-url amqp://...]      env: RTVBP_PREFIX, AMQP_URL
//
// Build (Debian packages golang-go, golang-github-rabbitmq-amqp091-go-dev and
// golang-github-vmihailenco-msgpack.v5-dev; no module proxy needed):
//
//	GO111MODULE=off GOPATH=$HOME/go:/usr/share/gocode go build -o go-agent .
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/vmihailenco/msgpack/v5"
)

// RabbitMQ's direct reply-to pseudo queue: consumed in no-ack mode on the channel that publishes.
const replyTo = "amq.rabbitmq.reply-to"

const replyTimeout = 10 * time.Second

func emit(event string, fields map[string]interface{}) {
	line := map[string]interface{}{"event": event}
	for k, v := range fields {
		line[k] = v
	}
	out, err := json.Marshal(line)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot print %s: %v\n", event, err)
		return
	}
	fmt.Println(string(out))
}

// session is one followed call; key is its routing-key word (session_id may be any text).
type session struct {
	id, key       string
	audioExchange string
	audioKey      string
	callerBytes   int
	echoedBytes   int
	nextAudioSeq  int64
}

// pending is a command waiting for its reply.
type pending struct {
	session *session
	command string // "audio" or "request <method>"
	sentAt  time.Time
}

type agent struct {
	prefix      string
	ch          *amqp.Channel
	eventsQueue string
	audioQueue  string
	sessions    map[string]*session // by key
	pending     map[string]pending  // by correlation id
}

func (a *agent) exchange(name string) string { return a.prefix + "." + name }

func (a *agent) start(url string) (events, audio, replies <-chan amqp.Delivery, closed chan *amqp.Error, err error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Properties: amqp.Table{"connection_name": "rtvbp-go-agent"}})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	if a.ch, err = conn.Channel(); err != nil {
		return nil, nil, nil, nil, err
	}
	// Same declarations as the bridge (idempotent), so it does not matter who starts first.
	for _, name := range []string{"events", "audio"} {
		if err = a.ch.ExchangeDeclare(a.exchange(name), "topic", true, false, false, false, nil); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	// Private, server-named queues: live data is worthless later, so nothing outlives this process.
	eq, err := a.ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	aq, err := a.ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	a.eventsQueue, a.audioQueue = eq.Name, aq.Name
	if err = a.ch.QueueBind(eq.Name, "*.session.started", a.exchange("events"), false, nil); err != nil {
		return nil, nil, nil, nil, err
	}
	// Direct reply-to: consume before publishing, no-ack, on the same channel.
	if replies, err = a.ch.Consume(replyTo, "", true, false, false, false, nil); err != nil {
		return nil, nil, nil, nil, err
	}
	if events, err = a.ch.Consume(eq.Name, "", true, true, false, false, nil); err != nil {
		return nil, nil, nil, nil, err
	}
	if audio, err = a.ch.Consume(aq.Name, "", true, true, false, false, nil); err != nil {
		return nil, nil, nil, nil, err
	}
	emit("ready", map[string]interface{}{"prefix": a.prefix})
	return events, audio, replies, closed, nil
}

// ---- upstream ------------------------------------------------------------------------------------------

// envelope is what every event shares; the body is decoded again into the type its `type` names.
type envelope struct {
	Type      string `msgpack:"type"`
	SessionID string `msgpack:"session_id"`
}

func (a *agent) onEvent(d amqp.Delivery) error {
	var head envelope
	if err := msgpack.Unmarshal(d.Body, &head); err != nil {
		return fmt.Errorf("not an event body on %s: %w", d.RoutingKey, err)
	}
	key := strings.SplitN(d.RoutingKey, ".", 2)[0]
	switch head.Type {
	case "session.started":
		var started SessionStartedEvent
		if err := msgpack.Unmarshal(d.Body, &started); err != nil {
			return fmt.Errorf("session.started: %w", err)
		}
		return a.follow(started)
	case "dtmf":
		var dtmf DtmfEvent
		if err := msgpack.Unmarshal(d.Body, &dtmf); err != nil {
			return fmt.Errorf("dtmf: %w", err)
		}
		s := a.sessions[key]
		if s == nil {
			return nil
		}
		emit("dtmf", map[string]interface{}{"session_id": s.id, "digit": dtmf.Data.Digit, "seq": dtmf.Seq})
		t0 := time.Now().UnixMilli()
		ping := RequestCommand{Type: "request", Method: "ping", Params: map[string]interface{}{
			"t0": t0, "data": map[string]interface{}{"digit": dtmf.Data.Digit},
		}}
		return a.command(s, "request ping", ping)
	case "session.ended":
		var ended SessionEndedEvent
		if err := msgpack.Unmarshal(d.Body, &ended); err != nil {
			return fmt.Errorf("session.ended: %w", err)
		}
		return a.finish(key, ended)
	default:
		if s := a.sessions[key]; s != nil {
			emit("upstream", map[string]interface{}{"session_id": s.id, "type": head.Type})
		}
	}
	return nil
}

func (a *agent) follow(started SessionStartedEvent) error {
	data := started.Data
	key := data.Commands.RoutingKey
	if _, known := a.sessions[key]; known || key == "" {
		return nil // a re-delivered session.started
	}
	s := &session{id: started.SessionID, key: key, audioExchange: data.Audio.Exchange, audioKey: data.Audio.RoutingKey}
	a.sessions[key] = s
	// Nothing published before a binding exists reaches us: bind `*.in` up front if you must never miss
	// the first chunk.
	if err := a.ch.QueueBind(a.audioQueue, s.audioKey, s.audioExchange, false, nil); err != nil {
		return err
	}
	if err := a.ch.QueueBind(a.eventsQueue, key+".#", a.exchange("events"), false, nil); err != nil {
		return err
	}
	emit("session.started", map[string]interface{}{
		"session_id": s.id, "key": key, "codec": data.AudioCodec.ID,
		"sample_rate": data.AudioCodec.SampleRate, "chunk_ms": data.Audio.ChunkMs, "instance": data.Instance,
	})
	return nil
}

func (a *agent) onAudio(d amqp.Delivery) error {
	var chunk AudioChunk
	if err := msgpack.Unmarshal(d.Body, &chunk); err != nil {
		return fmt.Errorf("not an audio chunk on %s: %w", d.RoutingKey, err)
	}
	s := a.sessions[strings.SplitN(d.RoutingKey, ".", 2)[0]]
	if s == nil || chunk.Direction != "in" || chunk.Seq < s.nextAudioSeq {
		return nil // not ours, the played-audio mirror, or a duplicate
	}
	if chunk.Seq > s.nextAudioSeq {
		emit("audio.gap", map[string]interface{}{"session_id": s.id, "expected_seq": s.nextAudioSeq, "got_seq": chunk.Seq})
	}
	s.nextAudioSeq = chunk.Seq + 1
	s.callerBytes += len(chunk.Audio)
	// Echo: the caller hears itself, one chunk behind. Commands of one call are applied in order.
	s.echoedBytes += len(chunk.Audio)
	return a.command(s, "audio", AudioCommand{Type: "audio", Audio: chunk.Audio})
}

func (a *agent) finish(key string, ended SessionEndedEvent) error {
	s := a.sessions[key]
	if s == nil {
		return nil
	}
	delete(a.sessions, key)
	c := ended.Data.Counters
	emit("session.ended", map[string]interface{}{
		"session_id": s.id, "reason": ended.Data.Reason, "caller_bytes": s.callerBytes,
		"echoed_bytes": s.echoedBytes, "bytes_in": c.BytesIn, "chunks_in": c.ChunksIn,
		"dropped_in_bytes": c.DroppedInBytes, "bytes_out": c.BytesOut,
	})
	if err := a.ch.QueueUnbind(a.eventsQueue, key+".#", a.exchange("events"), nil); err != nil {
		return err
	}
	return a.ch.QueueUnbind(a.audioQueue, s.audioKey, s.audioExchange, nil)
}

// ---- downstream ----------------------------------------------------------------------------------------

func (a *agent) command(s *session, what string, body interface{}) error {
	payload, err := msgpack.Marshal(body)
	if err != nil {
		return err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	correlationID := hex.EncodeToString(id)
	a.pending[correlationID] = pending{session: s, command: what, sentAt: time.Now()}
	return a.ch.Publish(a.exchange("commands"), s.key, false, false, amqp.Publishing{
		ContentType:   "application/msgpack",
		Type:          strings.SplitN(what, " ", 2)[0],
		CorrelationId: correlationID,
		ReplyTo:       replyTo,
		Body:          payload,
	})
}

func (a *agent) onReply(d amqp.Delivery) error {
	waiting, known := a.pending[d.CorrelationId]
	if !known {
		return fmt.Errorf("reply with unknown correlation id %q", d.CorrelationId)
	}
	delete(a.pending, d.CorrelationId)
	var reply Reply
	if err := msgpack.Unmarshal(d.Body, &reply); err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	traceparent, _ := d.Headers["traceparent"].(string)
	fields := map[string]interface{}{
		"session_id": reply.SessionID, "command": waiting.command, "ok": reply.Ok, "traceparent": traceparent,
	}
	if !reply.Ok {
		if reply.Error != nil {
			fields["code"], fields["message"] = reply.Error.Code, reply.Error.Message
		}
		emit("reply", fields)
		return nil
	}
	// The result's shape depends on the command: decode it into that command's result struct.
	switch waiting.command {
	case "audio":
		var result AudioResult
		if err := msgpack.Unmarshal(reply.Result, &result); err != nil {
			return fmt.Errorf("audio result: %w", err)
		}
		fields["queued_bytes"], fields["backlog_ms"] = result.QueuedBytes, result.BacklogMs
		emit("echoed", fields)
	case "request ping":
		var result PingResult
		if err := msgpack.Unmarshal(reply.Result, &result); err != nil {
			return fmt.Errorf("ping result: %w", err)
		}
		fields["result"] = map[string]interface{}{"t0": result.T0, "t1": result.T1, "t2": result.T2, "owd": result.Owd}
		fields["method"] = "ping"
		emit("reply", fields)
	}
	return nil
}

// expire forgets commands whose reply never came (the call ended: nobody will answer).
func (a *agent) expire(now time.Time) {
	for id, p := range a.pending {
		if now.Sub(p.sentAt) > replyTimeout {
			delete(a.pending, id)
			emit("reply.timeout", map[string]interface{}{"session_id": p.session.id, "command": p.command})
		}
	}
}

func main() {
	prefix := flag.String("prefix", envOr("RTVBP_PREFIX", "rtvbp"), "exchange prefix (BRIDGE_EXCHANGE_PREFIX)")
	url := flag.String("url", envOr("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ URL")
	flag.Parse()

	a := &agent{prefix: *prefix, sessions: map[string]*session{}, pending: map[string]pending{}}
	events, audio, replies, closed, err := a.start(*url)
	if err != nil {
		emit("fatal", map[string]interface{}{"message": err.Error()})
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// One loop owns all state: no locks, and commands of a call go out in the order their causes came in.
	for {
		var handled error
		select {
		case d, ok := <-events:
			if !ok {
				fatal(errors.New("events consumer closed"))
			}
			handled = a.onEvent(d)
		case d, ok := <-audio:
			if !ok {
				fatal(errors.New("audio consumer closed"))
			}
			handled = a.onAudio(d)
		case d, ok := <-replies:
			if !ok {
				fatal(errors.New("reply consumer closed"))
			}
			handled = a.onReply(d)
		case now := <-tick.C:
			a.expire(now)
		case err := <-closed:
			fatal(fmt.Errorf("connection closed: %v", err))
		case <-stop:
			emit("stopped", map[string]interface{}{"sessions_open": len(a.sessions)})
			return
		}
		if handled != nil {
			// A bad message must never stop the agent: report it and go on.
			emit("error", map[string]interface{}{"message": handled.Error()})
		}
	}
}

func fatal(err error) {
	// A supervisor restarts us; our exclusive queues and bindings died with the connection anyway.
	emit("fatal", map[string]interface{}{"message": err.Error()})
	os.Exit(1)
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
