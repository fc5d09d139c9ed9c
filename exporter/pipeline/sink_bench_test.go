package pipeline

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
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
	l, err := newLive(&cfg, reg)
	if err != nil {
		b.Fatal(err)
	}
	self, err := newSelfMetrics(reg)
	if err != nil {
		b.Fatal(err)
	}
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
