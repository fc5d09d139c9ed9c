package pipeline

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki"
)

// BenchmarkSinkWork is the per-line work of each member on Filebeat
// envelopes, without Kafka and the log store: the metrics member decodes,
// parses and counts; the log member decodes and parses (for the stream
// labels and the line's own time) and counts nothing. Their ratio is what
// the second read costs beyond fetching.
func BenchmarkSinkWork(b *testing.B) {
	g, err := loggen.New(loggen.Seed(8), loggen.Envelope(true))
	if err != nil {
		b.Fatal(err)
	}
	vals := make([][]byte, 1000)
	for i := range vals {
		vals[i] = g.Next(nil)
	}
	cfg := config.Default()
	reg := prometheus.NewRegistry()
	l, self := newTestLive(b, &cfg, reg)
	h := newHandler(l.load(), self)
	now := time.Now()
	b.Run("sink=metrics", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			h.handle(vals[i%len(vals)], now)
		}
	})
	b.Run("sink=logs", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			_ = h.decode(vals[i%len(vals)])
		}
	})
}

// BenchmarkSharedDecode is the per-line work of both members when they
// share decodes (docs/delivery.md: the metrics member counts and copies
// the line into the window, the log member copies it out and builds the
// Line it forwards) against each decoding for itself (metrics=alone plus
// logs=decode). Add, the same either way, is left out. Under cachegrind it
// gives instructions per line, which a loaded machine does not change
// (docs/performance.md).
func BenchmarkSharedDecode(b *testing.B) {
	g, err := loggen.New(loggen.Seed(8), loggen.Envelope(true))
	if err != nil {
		b.Fatal(err)
	}
	const size = 500
	recs := make([]*kgo.Record, size)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "nginxlog", Value: g.Next(nil), Offset: int64(i), Timestamp: time.Unix(1760097336, 0)}
	}
	cfg := config.Default()
	reg := prometheus.NewRegistry()
	l, self := newTestLive(b, &cfg, reg)
	s, err := newShared(reg)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	// Offsets advance batch after batch, as a partition's do.
	batch := 0
	next := func() *kafka.Batch {
		for j, r := range recs {
			r.Offset = int64(batch*size + j)
		}
		batch++
		return kafka.NewBatch("nginxlog", 0, recs)
	}
	perLine := func(b *testing.B, f func()) {
		b.ReportAllocs()
		for b.Loop() {
			f()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/line")
	}
	var line loki.Line
	alone := newProcessor(l, self, nil, nil, nil)
	b.Run("metrics=alone", func(b *testing.B) { perLine(b, func() { alone.countBatch(next(), now) }) })
	b.Run("logs=decode", func(b *testing.B) {
		perLine(b, func() {
			bt := next()
			for _, r := range bt.Records {
				ok := alone.decode(bt, r)
				logLine(&alone.h.rec, r, !ok, &line)
			}
		})
	})
	sharing := newProcessor(l, self, nil, nil, s)
	var v sharedView
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	b.Run("both=shared", func(b *testing.B) {
		s.take(kafka.NewBatch("nginxlog", 0, recs[:1]), sharing.h.rules, &v, timer) // the log member is here
		perLine(b, func() {
			bt := next()
			sharing.countBatch(bt, now)
			s.take(bt, sharing.h.rules, &v, timer)
			for j, r := range bt.Records {
				if !v.line(j, r, &line) {
					b.Fatal("a line missed the window")
				}
			}
		})
	})
}

// newTestLive builds the rules and self-metrics of cfg on reg, as a run
// does before its members.
func newTestLive(tb testing.TB, cfg *config.Config, reg prometheus.Registerer) (*live, *selfMetrics) {
	tb.Helper()
	l, err := newLive(cfg, reg)
	if err != nil {
		tb.Fatal(err)
	}
	self, err := newSelfMetrics(reg)
	if err != nil {
		tb.Fatal(err)
	}
	return l, self
}
