package pipeline

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki"
)

// shared hands what the metrics member decoded to the log member of the
// same process, so that a line is decoded once, not once per sink. The two
// members read the same records at about the same time when both keep up;
// each partition keeps a bounded window of the lines the metrics member
// decoded last, and the log member takes a line from it when it is there
// and decodes the record itself when it is not (the log member is behind
// by more than the window, the metrics member does not own the partition
// in this process, the rules were reloaded in between). Either way the log
// store gets the same line: the decode is deterministic.
//
// The metrics member never waits for the log member's progress: the log
// member holds a partition's lock only to copy a batch out (never while it
// waits, pushes or is paused), so the metrics member waits at most for that
// copy. The log member may wait, briefly and boundedly, for the metrics
// member to reach its batch (see take).
type shared struct {
	mu     sync.Mutex
	parts  map[sharedKey]*sharedPart
	arenas int           // partitions that may still get a window
	wait   time.Duration // sharedWait plus kafka.fetch_max_wait; longer in tests

	hit, miss prometheus.Counter
}

type sharedKey struct {
	topic     string
	partition int32
}

const (
	// sharedArena is the bytes of lines a partition's window holds, and
	// sharedEntries the lines whatever their size: a few thousand lines,
	// far more than the two members drift apart while both keep up.
	sharedArena   = 1 << 20
	sharedEntries = 4096
	// sharedMaxArenas bounds the memory of all windows (about 23 MiB with
	// their entries); further
	// partitions are decoded by each member, as without sharing.
	sharedMaxArenas = 16
	// sharedWait is how long the log member waits for the metrics member
	// to reach its batch, and sharedNear how far behind the metrics member
	// may be for waiting to be worth it. Past either the log member
	// decodes the batch itself.
	sharedWait = 100 * time.Millisecond
	sharedNear = sharedEntries / 2
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
	return &shared{parts: map[sharedKey]*sharedPart{}, arenas: sharedMaxArenas, wait: sharedWait,
		hit: c.WithLabelValues("hit"), miss: c.WithLabelValues("miss")}, nil
}

// part returns the partition's window; nil when the budget is spent.
func (s *shared) part(topic string, partition int32) *sharedPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sharedKey{topic, partition}
	p, ok := s.parts[k]
	if !ok {
		if s.arenas > 0 {
			s.arenas--
			p = newSharedPart()
		}
		s.parts[k] = p // nil is remembered too: one map lookup per batch
	}
	return p
}

// sharedPart is one partition's window: entries in offset order in a
// circular slice, their bytes in a circular arena written in the same
// order, so the oldest entries are the ones overwritten.
type sharedPart struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every written batch
	arena   []byte
	w       int // next write position in arena
	ents    []sharedEntry
	head, n int
	last    int64 // highest offset written; -1 before any
	// asked is the highest offset the log member asked for: while it is
	// further behind than sharedNear the metrics member does not copy
	// lines it would never take.
	asked   int64
	written time.Time // when the last batch was written
}

// sharedEntry is one decoded line. vlen and ts identify the record beside
// its offset (a topic deleted and made again reuses offsets).
type sharedEntry struct {
	offset   int64
	ts       int64  // the record's Kafka timestamp, Unix ns
	rules    *rules // what decoded it: a reload in between makes it a miss
	time     time.Time
	vlen     int
	start    int // in arena: line, host, vhost, trace id, in this order
	line     int
	host     int
	vhost    int
	trace    int
	unparsed bool
}

func newSharedPart() *sharedPart {
	return &sharedPart{changed: make(chan struct{}), arena: make([]byte, sharedArena),
		ents: make([]sharedEntry, sharedEntries), last: -1, asked: -1}
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
	if p.asked < b.Records[0].Offset-sharedNear {
		// Passed without copying; said all the same, or a log member
		// close behind would wait out its timeout for lines that never come.
		p.last = max(p.last, b.Records[len(b.Records)-1].Offset)
		sharedWriter{p}.end()
		return sharedWriter{}
	}
	return sharedWriter{p}
}

// put records r's line, l, decoded with ru. A record whose handling
// panicked is not put: the log member decodes it itself and contains its
// own panic.
func (w sharedWriter) put(r *kgo.Record, l *loki.Line, ru *rules) {
	p := w.p
	if r.Offset <= p.last {
		p.drop(r.Offset - 1) // read again from earlier (a rebalance): start over
	}
	n := len(l.Line) + len(l.Host) + len(l.VHost) + len(l.TraceID)
	if n > len(p.arena)/4 {
		p.last = r.Offset // not kept: the log member decodes it itself
		return
	}
	if p.w+n > len(p.arena) {
		p.evict(p.w, len(p.arena)) // the tail is left unused
		p.w = 0
	}
	p.evict(p.w, p.w+n)
	if p.n == len(p.ents) {
		p.pop()
	}
	e := p.at(p.n)
	p.n++
	*e = sharedEntry{offset: r.Offset, ts: r.Timestamp.UnixNano(), vlen: len(r.Value), rules: ru,
		time: l.Time, start: p.w, line: len(l.Line), host: len(l.Host), vhost: len(l.VHost),
		trace: len(l.TraceID), unparsed: l.Unparsed}
	w0 := p.w
	w0 += copy(p.arena[w0:], l.Line)
	w0 += copy(p.arena[w0:], l.Host)
	w0 += copy(p.arena[w0:], l.VHost)
	w0 += copy(p.arena[w0:], l.TraceID)
	p.w = w0
	p.last = r.Offset
}

// drop forgets every line and makes offset the last one written: entries
// stay in offset order, which find relies on.
func (p *sharedPart) drop(offset int64) {
	p.head, p.n, p.w = 0, 0, 0
	p.last = offset
}

// evict removes the oldest entries whose bytes lie in [from, to).
func (p *sharedPart) evict(from, to int) {
	for p.n > 0 {
		e := &p.ents[p.head]
		end := e.start + e.line + e.host + e.vhost + e.trace
		if e.start >= to || end <= from {
			return
		}
		p.pop()
	}
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
// whether its line was in the window and, if so, its entry with start
// pointing into buf, where the bytes were copied.
type sharedView struct {
	hits []sharedHit
	buf  []byte
}

type sharedHit struct {
	ok bool
	e  sharedEntry
}

// line is the i-th record's line, when found.
func (v *sharedView) line(i int, l *loki.Line) bool {
	if i >= len(v.hits) || !v.hits[i].ok {
		return false
	}
	e := &v.hits[i].e
	at := e.start
	span := func(n int) []byte {
		b := v.buf[at : at+n : at+n]
		at += n
		if n == 0 {
			return nil
		}
		return b
	}
	l.Time, l.Unparsed, l.Offset = e.time, e.unparsed, e.offset
	l.Line = span(e.line)
	l.Host = span(e.host)
	l.VHost = span(e.vhost)
	l.TraceID = span(e.trace)
	return true
}

// take copies out the window's lines for b's records that were decoded
// with ru. When the metrics member is writing this partition and is close
// behind the batch, it first waits up to sharedWait for it: the members
// fetch independently, and a batch read a moment early would be decoded
// twice.
func (s *shared) take(b *kafka.Batch, ru *rules, v *sharedView, timer *time.Timer) {
	v.hits = v.hits[:0]
	v.buf = v.buf[:0]
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
		if e == nil || e.offset != r.Offset || e.rules != ru || e.vlen != len(r.Value) || e.ts != r.Timestamp.UnixNano() {
			v.hits = append(v.hits, sharedHit{})
			continue
		}
		h := sharedHit{ok: true, e: *e}
		h.e.start = len(v.buf)
		v.buf = append(v.buf, p.arena[e.start:e.start+e.line+e.host+e.vhost+e.trace]...)
		v.hits = append(v.hits, h)
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
