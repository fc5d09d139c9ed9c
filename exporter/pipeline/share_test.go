package pipeline

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki"
)

// shareFixture is the two members of one process without Kafka: a metrics
// processor writing the window, and a log member's view of it.
type shareFixture struct {
	t       *testing.T
	s       *shared
	counter *processor
	own     *processor // decodes by itself, as a log member without sharing
	timer   *time.Timer
	recs    []*kgo.Record
}

func newShareFixture(t *testing.T, values [][]byte) *shareFixture {
	t.Helper()
	cfg := fuzzConfig("http://127.0.0.1:9", false)
	reg := prometheus.NewRegistry()
	l, self := newTestLive(t, &cfg, reg)
	s, err := newShared(reg)
	if err != nil {
		t.Fatal(err)
	}
	f := &shareFixture{t: t, s: s, counter: newProcessor(l, self, nil, nil, s), own: newProcessor(l, self, nil, nil, nil),
		timer: time.NewTimer(time.Hour)}
	f.timer.Stop()
	ts := time.Unix(1760097336, 0)
	for i, v := range values {
		f.recs = append(f.recs, &kgo.Record{Topic: "nginxlog", Value: v, Offset: int64(i), Timestamp: ts.Add(time.Duration(i) * time.Millisecond)})
	}
	return f
}

func (f *shareFixture) batch(from, to int) *kafka.Batch {
	return kafka.NewBatch("nginxlog", 0, f.recs[from:to])
}

// take returns, for each record of b, the line the window gave, or a
// description of why it differs from decoding the record again.
func (f *shareFixture) take(b *kafka.Batch) (hits int, errs []string) {
	var v sharedView
	f.s.take(b, f.counter.h.rules, &v, f.timer)
	for i, r := range b.Records {
		var got loki.Line
		if !v.line(i, r, &got) {
			continue
		}
		hits++
		ok := f.own.decode(b, r)
		var want loki.Line
		logLine(&f.own.h.rec, r, !ok, &want)
		if d := lineDiff(&got, &want); d != "" {
			errs = append(errs, fmt.Sprintf("offset %d: %s", r.Offset, d))
		}
	}
	return hits, errs
}

func lineDiff(got, want *loki.Line) string {
	var d []string
	for _, c := range []struct {
		name      string
		got, want []byte
	}{{"line", got.Line, want.Line}, {"host", got.Host, want.Host}, {"vhost", got.VHost, want.VHost}, {"trace id", got.TraceID, want.TraceID}} {
		if !bytes.Equal(c.got, c.want) {
			d = append(d, fmt.Sprintf("%s %q, want %q", c.name, c.got, c.want))
		}
	}
	if !got.Time.Equal(want.Time) || got.Unparsed != want.Unparsed || got.Offset != want.Offset {
		d = append(d, fmt.Sprintf("time/unparsed/offset %v/%v/%d, want %v/%v/%d", got.Time, got.Unparsed, got.Offset, want.Time, want.Unparsed, want.Offset))
	}
	return strings.Join(d, "; ")
}

func shareValues(t *testing.T, n int) [][]byte {
	lines, _ := genMixed(t, n/2, time.Now().Add(-time.Hour).Truncate(time.Second))
	odd := [][]byte{
		[]byte(`{"message": 5}`), []byte(`not json at all`), []byte("\xff\xfe bytes"), nil,
		[]byte(`{"message":"10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\" \"-\" \xff.example 0.1 - - - - - -","host":{"name":"w\u00e9b"}}`),
	}
	for i, o := range odd {
		lines[(i+1)*len(lines)/(len(odd)+1)] = o
	}
	return lines
}

// The log member forwards from the window exactly what it would have
// decoded itself, through several wraps of the window's arena.
func TestSharedLinesAreTheLinesDecoded(t *testing.T) {
	f := newShareFixture(t, shareValues(t, 3*sharedEntries))
	now := time.Now()
	var errs []string
	hits := 0
	for from := 0; from < len(f.recs); from += 500 {
		b := f.batch(from, min(from+500, len(f.recs)))
		f.counter.countBatch(b, now)
		h, e := f.take(b)
		hits += h
		errs = append(errs, e...)
	}
	// The first batch has long been overwritten: decoded again, not taken.
	old, _ := f.take(f.batch(0, 500))
	// One record has a host name with an escape, unescaped where no
	// position reaches: that one is decoded again.
	if want := len(f.recs) - 1; hits != want || old != 0 || len(errs) > 0 {
		t.Errorf("hits %d, want %d; %d from the overwritten first batch (want 0), mismatches %d: %.5q", hits, want, old, len(errs), errs)
	}
}

// A log member a moment ahead of the metrics member waits for it rather
// than decoding the batch again; a reload in between makes every line a
// miss; a partition read again from earlier starts the window over.
func TestSharedWaitReloadAndRewind(t *testing.T) {
	f := newShareFixture(t, shareValues(t, 3000))
	f.s.wait = time.Minute // the wait must end by the write, not by the timer
	now := time.Now()
	f.counter.countBatch(f.batch(0, 1000), now)

	type result struct {
		hits int
		errs []string
	}
	done := make(chan result, 1)
	go func() {
		h, e := f.take(f.batch(1000, 2000))
		done <- result{h, e}
	}()
	f.counter.countBatch(f.batch(1000, 2000), now)
	var waited result
	select {
	case waited = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the log member still waits after the metrics member wrote its batch")
	}

	f.s.wait = time.Millisecond // what follows has nothing to wait for
	reloaded := *f.counter.h.rules
	var v sharedView
	f.s.take(f.batch(1000, 2000), &reloaded, &v, f.timer)
	afterReload := 0
	for i := range v.hits {
		if v.hits[i].ok {
			afterReload++
		}
	}

	f.counter.countBatch(f.batch(500, 1000), now) // a rebalance: read again from 500
	rewound, _ := f.take(f.batch(500, 1000))
	stale, _ := f.take(f.batch(1000, 2000))
	if waited.hits != 1000 || len(waited.errs) > 0 || afterReload != 0 || rewound != 500 || stale != 0 {
		t.Errorf("waited: %d hits of 1000, mismatches %.3q; after a reload %d hits (want 0); rewound %d of 500; past the rewind %d (want 0)",
			waited.hits, waited.errs, afterReload, rewound, stale)
	}
}

// The log member does not wait for a partition the metrics member of this
// process is not writing, nor for one it is far behind on.
func TestSharedNoWaitWhenFarBehind(t *testing.T) {
	f := newShareFixture(t, shareValues(t, 3000))
	f.s.wait = time.Minute
	start := time.Now()
	h1, _ := f.take(f.batch(0, 100)) // nothing written yet
	f.counter.countBatch(f.batch(0, 10), time.Now())
	for i, r := range f.recs[2990:] {
		r.Offset = sharedNear*4 + int64(i) // far ahead of what was written
	}
	h2, _ := f.take(f.batch(2990, 3000))
	if took := time.Since(start); h1 != 0 || h2 != 0 || took > 20*time.Second {
		t.Errorf("hits %d and %d (want 0 and 0), took %v (want no wait)", h1, h2, took)
	}
}

// A line some part of which lies where no position reaches (a host name
// with an escape is unescaped into the decoder's scratch) is left to the
// log member to decode; the lines around it are still taken.
func TestSharedSkipsALineItCannotPointAt(t *testing.T) {
	values := shareValues(t, 4)[:3]
	values[1] = []byte(`{"message":"10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"","host":{"name":"w\u00e9b"}}`)
	f := newShareFixture(t, values)
	b := f.batch(0, 3)
	f.take(b) // the log member is here
	f.counter.countBatch(b, time.Now())
	var v sharedView
	f.s.take(b, f.counter.h.rules, &v, f.timer)
	var got []bool
	var l loki.Line
	for i, r := range b.Records {
		got = append(got, v.line(i, r, &l))
	}
	if fmt.Sprint(got) != "[true false true]" {
		t.Errorf("taken from the window: %v, want [true false true]", got)
	}
}

// A metrics member that passes a far-behind log member's lines without
// writing them says so: the log member then decodes its batch at once
// instead of waiting for lines that will never be written (it used to wait
// out its whole timeout, batch after batch, in every backlog).
func TestSharedNoWaitForLinesPassedUncopied(t *testing.T) {
	f := newShareFixture(t, shareValues(t, 3000))
	f.s.wait = time.Minute
	f.take(f.batch(0, 100)) // the log member is here
	now := time.Now()
	f.counter.countBatch(f.batch(0, 10), now)
	for i, r := range f.recs[2200:] {
		r.Offset = 2*sharedEntries + int64(i) // beyond the window's reach of the log member: not written
	}
	f.counter.countBatch(f.batch(2200, 3000), now)
	start := time.Now()
	hits, _ := f.take(f.batch(100, 200))
	if took := time.Since(start); hits != 0 || took > 20*time.Second {
		t.Errorf("%d hits (want 0), took %v (want no wait)", hits, took)
	}
}

// The windows' memory is what sharedMaxWindows says: 72 bytes a line.
func TestSharedEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(sharedEntry{}); n != 72 {
		t.Errorf("a window entry is %d bytes, want 72 (or say the new bound in sharedMaxWindows and docs/performance.md)", n)
	}
}
