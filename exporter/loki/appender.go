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
	topic     string
	partition int32

	key    []byte
	lastK  []byte
	lastID int32
	ids    map[string]int32
}

// Append adds the lines of one source: lines calls Add for each. The
// appender's lock is held while lines runs and given back however lines
// ends, a panic included, so the next source cannot block on it. A batch
// that is not full stays open for more lines until batch.max_wait.
func (a *Appender) Append(topic string, partition int32, ack Acker, lines func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.topic, a.partition, a.ack = topic, partition, ack
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
	a.key = a.c.streams.key(a.key, l.Host, l.VHost, l.Unparsed)
	var id int32
	if string(a.key) == string(a.lastK) && a.lastK != nil {
		id = a.lastID
	} else {
		var ok bool
		if id, ok = a.ids[string(a.key)]; !ok {
			id = a.c.streams.id(a.key)
			if len(a.ids) >= 4*a.c.cfg.Labels.MaxStreams+16 {
				clear(a.ids)
			}
			a.ids[string(a.key)] = id
		}
		a.lastK = append(a.lastK[:0], a.key...)
		a.lastID = id
	}

	b := a.b
	if b != nil && len(b.buf)+len(line) > a.c.maxBytes && len(b.entries) > 0 {
		a.seal()
		b = nil
	}
	if b == nil {
		b = a.c.newBatch()
		a.b = b
	}
	if a.ack != nil && b.lastAck != a.ack {
		a.ack.Retain()
		b.acks = append(b.acks, a.ack)
		b.lastAck = a.ack
	}
	ts := l.Time.UnixNano()
	if ts%1e6 == 0 {
		off := l.Offset % 1e6
		if off < 0 {
			off = -off
		}
		ts += off
	}
	e := entry{ts: ts, off: uint32(len(b.buf)), n: uint32(len(line)), stream: id, partition: a.partition, offset: l.Offset}
	b.buf = append(b.buf, line...)
	if a.c.meta {
		e.topic = b.topicIndex(a.topic)
		if len(l.TraceID) > 0 {
			e.traceOff, e.traceN = uint32(len(b.buf)), uint16(min(len(l.TraceID), 64))
			b.buf = append(b.buf, l.TraceID[:e.traceN]...)
		}
	}
	b.entries = append(b.entries, e)
	b.lineBytes += int64(len(line))
	a.c.inflight.Add(int64(len(line)))
	if len(b.buf) >= a.c.maxBytes {
		a.seal()
	}
}

// seal queues the open batch for pushing. a.mu is held.
func (a *Appender) seal() {
	if a.b == nil {
		return
	}
	b := a.b
	a.b = nil
	b.lastAck = nil
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
