package pipeline

import (
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki"
)

// shared hands what the metrics member decoded to the log member of the
// same process, so that a line is decoded once, not once per sink. The two
// members read the same records at about the same time when both keep up;
// each partition keeps a bounded window of where the metrics member found
// what the log store gets in the lines it decoded last (the line in the
// record value, its fields in the line: positions, not copies, so a window
// spans tens of thousands of lines in a few MiB). The log member has the
// same records from its own fetch and rebuilds each line from its copy
// when its entry is there, and decodes the record itself when it is not
// (the log member is behind by more than the window, the metrics member
// does not own the partition in this process, the rules were reloaded in
// between, a field lies where no position reaches). Either way the log
// store gets the same line: the decode is deterministic.
//
// The metrics member never waits for the log member's progress: the log
// member holds a partition's lock only to copy a batch's entries out
// (never while it waits, pushes or is paused), so the metrics member waits
// at most for that copy. The log member may wait, briefly and boundedly,
// for the metrics member to reach its batch (see take).
type shared struct {
	mu      sync.Mutex
	parts   map[sharedKey]*sharedPart
	windows int           // partitions that may still get a window
	wait    time.Duration // sharedWait plus kafka.fetch_max_wait; longer in tests

	hit, miss prometheus.Counter
}

type sharedKey struct {
	topic     string
	partition int32
}

const (
	// sharedEntries is the lines a partition's window holds: in a backlog
	// the two members fetch, and so reach a partition's records, in their
	// own order, tens of thousands of lines apart at times.
	sharedEntries = 32 << 10
	// sharedMaxWindows bounds the memory of all windows (72 bytes a line,
	// 2.25 MiB a window, 36 MiB in all); further partitions are decoded by
	// each member, as without sharing.
	sharedMaxWindows = 16
	// sharedWait is how long the log member waits for the metrics member
	// to reach its batch, and sharedNear how far behind the metrics member
	// may be for waiting to be worth it. Past either the log member
	// decodes the batch itself.
	sharedWait = 100 * time.Millisecond
	sharedNear = 4096
	// sharedActive is how recently the metrics member must have written a
	// partition for the log member to wait for it there.
	sharedActive = 2 * time.Second
)

func newShared(reg prometheus.Registerer) (*shared, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_loki_shared_decodes_total",
		Help: "Lines the log member forwarded, by whether their decode was taken from the metrics member of the same process (hit) or done again (miss).",
	}, []string{"result"})
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	return &shared{parts: map[sharedKey]*sharedPart{}, windows: sharedMaxWindows, wait: sharedWait,
		hit: c.WithLabelValues("hit"), miss: c.WithLabelValues("miss")}, nil
}

// part returns the partition's window; nil when the budget is spent.
func (s *shared) part(topic string, partition int32) *sharedPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sharedKey{topic, partition}
	p, ok := s.parts[k]
	if !ok {
		if s.windows > 0 {
			s.windows--
			p = newSharedPart()
		}
		s.parts[k] = p // nil is remembered too: one map lookup per batch
	}
	return p
}

// sharedPart is one partition's window: entries in offset order in a
// circular slice, the oldest overwritten first.
type sharedPart struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every written batch
	ents    []sharedEntry
	head, n int
	last    int64 // highest offset written or passed; -1 before any
	// asked is the highest offset the log member asked for: while it is
	// further behind than the window holds the metrics member does not
	// write entries it would never take.
	asked   int64
	written time.Time // when the last batch was written
}

// sharedEntry is one decoded line. vlen and ts identify the record beside
// its offset (a topic deleted and made again reuses offsets), so the log
// member's copy of the record is the one the positions point into.
type sharedEntry struct {
	offset int64
	ts     int64  // the record's Kafka timestamp, Unix ns
	time   int64  // the time the line is stored under, Unix ns
	rules  *rules // what decoded it: a reload in between makes it a miss
	vlen   int32
	line   lineSpan
	host   span
	vhost  span
	trace  span
	lineIn uint8 // where line is: inNone, inValue or inMessage
	// unparsed is the line's parse_status. The fields are ordered for
	// size: 72 bytes.
	unparsed bool
}

// lineSpan is where a line is: n bytes at off in the record value, or the
// envelope message string starting at off, which unescapes to n bytes.
type lineSpan struct {
	off, n int32
}

// span is where a field is: nowhere (empty), or n bytes at off in the
// record value or in the line.
type span struct {
	off int32
	n   uint16
	in  uint8
}

const (
	inNone uint8 = iota
	inValue
	inMessage // lineSpan only
	inLine    // span only
)

func newSharedPart() *sharedPart {
	return &sharedPart{changed: make(chan struct{}), ents: make([]sharedEntry, sharedEntries), last: -1, asked: -1}
}

// entryOf is where r's line l, decoded into rec, lies; false when some
// part of it lies where no position reaches (a host name unescaped into
// the decoder's scratch, say): the log member decodes such a line itself.
func entryOf(r *kgo.Record, l *loki.Line, rec *accesslog.Record) (sharedEntry, bool) {
	e := sharedEntry{offset: r.Offset, ts: r.Timestamp.UnixNano(), time: l.Time.UnixNano(), vlen: int32(len(r.Value)), unparsed: l.Unparsed}
	if len(l.Line) > 0 {
		if off, ok := within(l.Line, r.Value); ok {
			e.line, e.lineIn = lineSpan{off: int32(off), n: int32(len(l.Line))}, inValue
		} else if rec.MessageAt >= 0 && len(l.Line) <= math.MaxInt32 {
			e.line, e.lineIn = lineSpan{off: int32(rec.MessageAt), n: int32(len(l.Line))}, inMessage
		} else {
			return e, false
		}
	}
	var ok1, ok2, ok3 bool
	e.host, ok1 = spanOf(l.Host, r.Value, l.Line)
	e.vhost, ok2 = spanOf(l.VHost, r.Value, l.Line)
	e.trace, ok3 = spanOf(l.TraceID, r.Value, l.Line)
	return e, ok1 && ok2 && ok3
}

func spanOf(b, value, line []byte) (span, bool) {
	if len(b) == 0 {
		return span{}, true
	}
	if len(b) > math.MaxUint16 {
		return span{}, false
	}
	if off, ok := within(b, value); ok {
		return span{off: int32(off), n: uint16(len(b)), in: inValue}, true
	}
	if off, ok := within(b, line); ok {
		return span{off: int32(off), n: uint16(len(b)), in: inLine}, true
	}
	return span{}, false
}

// within is where b starts in buf, when b lies in it.
func within(b, buf []byte) (int, bool) {
	if len(b) > len(buf) || len(buf) == 0 {
		return 0, false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	base := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	if p < base || p-base > uintptr(len(buf)-len(b)) {
		return 0, false
	}
	return int(p - base), true
}

// write is the metrics member's side: begin, put each decoded line, end.
type sharedWriter struct {
	p *sharedPart
}

func (s *shared) begin(b *kafka.Batch) sharedWriter {
	if s == nil {
		return sharedWriter{}
	}
	p := s.part(b.Topic, b.Partition)
	if p == nil || len(b.Records) == 0 {
		return sharedWriter{}
	}
	p.mu.Lock()
	if p.asked < b.Records[0].Offset-sharedEntries {
		// Passed without writing; said all the same, or a log member
		// close behind would wait out its timeout for lines that never come.
		p.last = max(p.last, b.Records[len(b.Records)-1].Offset)
		sharedWriter{p}.end()
		return sharedWriter{}
	}
	return sharedWriter{p}
}

// put records where r's line l, decoded into rec with ru, lies. A record
// whose handling panicked is not put: the log member decodes it itself and
// contains its own panic.
func (w sharedWriter) put(r *kgo.Record, l *loki.Line, rec *accesslog.Record, ru *rules) {
	p := w.p
	if r.Offset <= p.last {
		p.drop(r.Offset - 1) // read again from earlier (a rebalance): start over
	}
	p.last = r.Offset
	e, ok := entryOf(r, l, rec)
	if !ok {
		return
	}
	e.rules = ru
	if p.n == len(p.ents) {
		p.pop()
	}
	*p.at(p.n) = e
	p.n++
}

// drop forgets every line and makes offset the last one written: entries
// stay in offset order, which find relies on.
func (p *sharedPart) drop(offset int64) {
	p.head, p.n = 0, 0
	p.last = offset
}

func (p *sharedPart) pop() {
	p.ents[p.head].rules = nil
	p.head = (p.head + 1) % len(p.ents)
	p.n--
}

func (w sharedWriter) end() {
	p := w.p
	if p == nil {
		return
	}
	p.written = time.Now()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// sharedView is what the log member took for one batch: for each record,
// whether its line was in the window and, if so, its entry; buf holds the
// last unescaped message.
type sharedView struct {
	hits []sharedHit
	buf  []byte
}

type sharedHit struct {
	ok bool
	e  sharedEntry
}

// line fills l with the i-th record's line, rebuilt from r, the log
// member's copy of the record; false when it was not found, or r does not
// hold it where the entry says (then r is decoded as any miss). l's bytes
// are valid until the next call.
func (v *sharedView) line(i int, r *kgo.Record, l *loki.Line) bool {
	if i >= len(v.hits) || !v.hits[i].ok {
		return false
	}
	e := &v.hits[i].e
	switch e.lineIn {
	case inNone:
		l.Line = nil
	case inValue:
		l.Line = r.Value[e.line.off : e.line.off+e.line.n : e.line.off+e.line.n]
	case inMessage:
		line, ok := accesslog.EnvelopeLine(r.Value, int(e.line.off), v.buf)
		if !ok || len(line) != int(e.line.n) {
			return false
		}
		if _, inValue := within(line, r.Value); !inValue {
			v.buf = line[:0] // keep its growth
		}
		l.Line = line
	}
	var ok1, ok2, ok3 bool
	l.Host, ok1 = e.host.of(r.Value, l.Line)
	l.VHost, ok2 = e.vhost.of(r.Value, l.Line)
	l.TraceID, ok3 = e.trace.of(r.Value, l.Line)
	l.Time, l.Unparsed, l.Offset = time.Unix(0, e.time), e.unparsed, e.offset
	return ok1 && ok2 && ok3
}

// of is the span's bytes in value or line; false when they are too short
// for it.
func (s span) of(value, line []byte) ([]byte, bool) {
	b := value
	switch s.in {
	case inNone:
		return nil, true
	case inLine:
		b = line
	}
	end := int(s.off) + int(s.n)
	if end > len(b) {
		return nil, false
	}
	return b[s.off:end:end], true
}

// take copies out the window's entries for b's records that were decoded
// with ru. When the metrics member is writing this partition and is close
// behind the batch, it first waits up to sharedWait for it: the members
// fetch independently, and a batch read a moment early would be decoded
// twice.
func (s *shared) take(b *kafka.Batch, ru *rules, v *sharedView, timer *time.Timer) {
	v.hits = v.hits[:0]
	if s == nil || len(b.Records) == 0 {
		return
	}
	p := s.part(b.Topic, b.Partition)
	if p == nil {
		return
	}
	first, last := b.Records[0].Offset, b.Records[len(b.Records)-1].Offset
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = max(p.asked, last)
	if p.last < last && p.last >= first-sharedNear && time.Since(p.written) < sharedActive {
		p.wait(last, s.wait, timer)
	}
	i := p.find(first)
	for _, r := range b.Records {
		for i < p.n && p.at(i).offset < r.Offset {
			i++
		}
		var e *sharedEntry
		if i < p.n {
			e = p.at(i)
		}
		if e == nil || e.offset != r.Offset || e.rules != ru || int(e.vlen) != len(r.Value) || e.ts != r.Timestamp.UnixNano() {
			v.hits = append(v.hits, sharedHit{})
			continue
		}
		v.hits = append(v.hits, sharedHit{ok: true, e: *e})
	}
}

// wait waits, with p.mu held on entry and on return, until offset last is
// written or the timer fires.
func (p *sharedPart) wait(last int64, d time.Duration, timer *time.Timer) {
	timer.Reset(d)
	defer timer.Stop()
	for p.last < last {
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
			p.mu.Lock()
		case <-timer.C:
			p.mu.Lock()
			return
		}
	}
}

func (p *sharedPart) at(i int) *sharedEntry { return &p.ents[(p.head+i)%len(p.ents)] }

// find is the index, from head, of the first entry at or after offset.
func (p *sharedPart) find(offset int64) int {
	lo, hi := 0, p.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.at(m).offset < offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
