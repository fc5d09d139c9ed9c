package loki

import (
	"sync"
	"time"
	"unicode/utf8"
)

// Acker is the source of a line: the Kafka batch it came from. A push that
// carries any of its lines Retains it once and Releases it when Loki has
// acknowledged the push, or when the lines are rejected or dropped (both
// counted). *kafka.Batch is one.
type Acker interface {
	Retain()
	Release()
}

// Line is one log line for Add. Byte slices are copied; the caller may
// reuse them as soon as Add returns.
type Line struct {
	// Time is the entry's timestamp: the line's own time, else the Filebeat
	// @timestamp, else the Kafka record time; it must be the same each time
	// the record is read again (see Add).
	Time     time.Time
	Line     []byte
	Host     []byte // from the Filebeat envelope; a label when labels.host is on
	VHost    []byte // a label when labels.vhost is on
	Unparsed bool   // parse_status="unparsed" when labels.parse_status is on
	Offset   int64  // Kafka offset: structured metadata and the timestamp tie-break
	TraceID  []byte // structured metadata when enabled
}

// Appender hands lines to the client. Each worker has its own, so a line
// costs a copy into the open batch and no lock: the lock is taken once per
// Kafka batch, by Append.
type Appender struct {
	c *Client

	mu        sync.Mutex
	b         *batch // open batch; nil when none
	ack       Acker
	retained  bool // ack is retained by b
	topic     string
	partition int32

	// The last line's stream, compared field by field: consecutive lines
	// mostly share it, and building its key costs more than the compare.
	lastOK    bool
	lastHost  []byte
	lastVHost []byte
	lastU     bool
	lastID    int32

	key []byte
	ids map[string]int32

	w  entryWriter
	tp []byte // the topic and partition metadata pairs, encoded
}

// Append adds the lines of one source: lines calls Add for each. The
// appender's lock is held while lines runs and given back however lines
// ends, a panic included, so the next source cannot block on it. A batch
// that is not full stays open for more lines until batch.max_wait.
func (a *Appender) Append(topic string, partition int32, ack Acker, lines func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.topic, a.partition, a.ack = topic, partition, ack
	a.retained = a.b != nil && a.b.lastAck == ack
	if a.c.meta {
		a.tp = appendPair(a.tp[:0], "topic", topic)
		a.tp = appendNumberPair(a.tp, "partition", int64(partition))
	}
	defer func() { a.ack = nil }()
	lines()
}

// Add copies one line into the open batch, sealing the batch for pushing
// once it is full. The ack given to Append is retained once per batch.
//
// Timestamps: Loki (and the query path) treat entries of one stream with
// the same timestamp and line as one, which makes a line pushed twice after
// a restart invisible as a duplicate. Two different requests that log the
// same line within one second ($time_local) would collapse the same way, so
// a timestamp with no sub-millisecond part gets the record's offset modulo
// one million as nanoseconds: deterministic on every re-read, distinct for
// neighbours.
func (a *Appender) Add(l *Line) {
	line := l.Line
	if len(line) > a.c.maxLine {
		line = truncate(line, a.c.maxLine)
		a.c.m.truncated.Inc()
	}
	id := a.stream(l)

	b := a.b
	if b != nil && b.lineBytes+int64(len(line)) > int64(a.c.maxBytes) && len(b.entries) > 0 {
		a.seal()
		b = nil
	}
	if b == nil {
		b = a.c.newBatch()
		a.b = b
	}
	if a.ack != nil && !a.retained {
		a.ack.Retain()
		b.acks = append(b.acks, a.ack)
		b.lastAck = a.ack
		a.retained = true
	}
	ts := l.Time.UnixNano()
	if ts%1e6 == 0 {
		off := l.Offset % 1e6
		if off < 0 {
			off = -off
		}
		ts += off
	}
	e := entry{ts: ts, n: uint32(len(line)), stream: id, partition: a.partition, offset: l.Offset}
	var trace []byte
	if a.c.meta {
		e.topic = b.topicIndex(a.topic)
		if len(l.TraceID) > 0 {
			trace = l.TraceID[:min(len(l.TraceID), 64)]
			e.traceN = uint16(len(trace))
		}
	}
	a.w.put(b, &e, line, a.tp, trace)
	b.entries = append(b.entries, e)
	b.lineBytes += int64(len(line))
	a.c.inflight.Add(int64(len(line)))
	if b.lineBytes >= int64(a.c.maxBytes) {
		a.seal()
	}
}

// stream returns the stream id of l's labels.
func (a *Appender) stream(l *Line) int32 {
	cfg := &a.c.streams.cfg
	var host, vhost []byte
	if cfg.Host {
		host = clip(l.Host)
	}
	if cfg.VHost {
		vhost = clip(l.VHost)
	}
	u := cfg.ParseStatus && l.Unparsed
	if a.lastOK && u == a.lastU && same(host, a.lastHost) && same(vhost, a.lastVHost) {
		return a.lastID
	}
	a.key = a.c.streams.key(a.key, host, vhost, u)
	id, ok := a.ids[string(a.key)]
	if !ok {
		id = a.c.streams.id(a.key)
		if len(a.ids) >= 4*a.c.cfg.Labels.MaxStreams+16 {
			clear(a.ids)
		}
		a.ids[string(a.key)] = id
	}
	a.lastOK, a.lastU, a.lastID = true, u, id
	a.lastHost = append(a.lastHost[:0], host...)
	a.lastVHost = append(a.lastVHost[:0], vhost...)
	return id
}

func same(x, y []byte) bool {
	return len(x) == len(y) && (len(x) == 0 || string(x) == string(y))
}

// seal queues the open batch for pushing. a.mu is held.
func (a *Appender) seal() {
	if a.b == nil {
		return
	}
	b := a.b
	a.b = nil
	b.lastAck = nil
	a.retained = false
	a.c.enqueue(b)
}

// flush seals the open batch if it is older than age (0: any age).
func (a *Appender) flush(age time.Duration, now time.Time) {
	a.mu.Lock()
	if a.b != nil && now.Sub(a.b.created) >= age {
		a.seal()
	}
	a.mu.Unlock()
}

// truncate cuts line to at most n bytes, back to the start of a UTF-8
// sequence when the cut would split one (a store may refuse invalid UTF-8).
func truncate(line []byte, n int) []byte {
	cut := n
	for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(line[cut]); i++ {
		cut--
	}
	if !utf8.RuneStart(line[cut]) {
		cut = n // not UTF-8 anyway
	}
	return line[:cut]
}
