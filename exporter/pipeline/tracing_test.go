package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// Every fetched batch is one trace: a kafka.batch root span that ends when
// the batch is committable, with a parse child; commits have their own spans.
func TestBatchSpans(t *testing.T) {
	c := testbed.Cluster(t)
	const n = 3000
	lines, tot := generate(t, n, loggen.Seed(21), loggen.MalformedRatio(0.01))
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("nginxlog"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for _, l := range lines {
		recs = append(recs, &kgo.Record{Value: l})
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	prod.Close()

	rec := tracetest.NewSpanRecorder()
	cfg := config.Default()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Kafka.CommitInterval = 100 * time.Millisecond
	cfg.Health.Enabled = false
	cfg.Tracing.SamplingRatio = 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // a failed wait stops the run too
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := Run(ctx, &cfg, Options{
			Web:            &web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}, WebSystemdSocket: new(bool), WebConfigFile: new(string)},
			KafkaOpts:      []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)},
			SpanProcessors: []sdktrace.SpanProcessor{rec},
		}); err != nil {
			t.Error(err)
		}
	}()
	records := func() (sum int64) {
		for _, s := range rec.Ended() {
			if s.Name() == "kafka.batch" {
				for _, a := range s.Attributes() {
					if a.Key == "records" {
						sum += a.Value.AsInt64()
					}
				}
			}
		}
		return sum
	}
	testbed.Eventually(t, 30*time.Second, func() []string {
		if got := records(); got < n {
			return []string{fmt.Sprintf("batch spans cover %d records, want %d", got, n)}
		}
		return nil
	})
	cancel()
	wg.Wait()

	spans := rec.Ended()
	batches := map[string]sdktrace.ReadOnlySpan{}
	var parses, commits int
	var failed int64
	for _, s := range spans {
		switch s.Name() {
		case "kafka.batch":
			batches[s.SpanContext().SpanID().String()] = s
			attrs := map[string]int64{}
			for _, a := range s.Attributes() {
				attrs[string(a.Key)] = a.Value.AsInt64()
			}
			if attrs["offset.last"]-attrs["offset.first"]+1 != attrs["records"] {
				t.Errorf("batch span offsets %d..%d do not cover %d records", attrs["offset.first"], attrs["offset.last"], attrs["records"])
			}
			if len(s.Events()) != 1 || s.Events()[0].Name != "acknowledged" {
				t.Errorf("batch span events = %v, want one acknowledged", s.Events())
			}
		case "kafka.commit":
			commits++
		}
	}
	for _, s := range spans {
		if s.Name() != "parse" {
			continue
		}
		parses++
		parent, ok := batches[s.Parent().SpanID().String()]
		if !ok || parent.SpanContext().TraceID() != s.SpanContext().TraceID() {
			t.Errorf("parse span %v is not the child of a batch span", s.SpanContext().SpanID())
		}
		for _, a := range s.Attributes() {
			if a.Key == "lines.failed" {
				failed += a.Value.AsInt64()
			}
		}
	}
	if parses != len(batches) || len(batches) == 0 {
		t.Errorf("%d parse spans for %d batch spans", parses, len(batches))
	}
	if failed != tot.Malformed {
		t.Errorf("parse spans count %d failed lines, want %d", failed, tot.Malformed)
	}
	if commits == 0 {
		t.Error("no kafka.commit span")
	}
}

// BenchmarkProcessBatch: the per-batch cost of the processor with tracing
// off (the no-op tracer, the default) and on (every batch sampled, spans
// recorded in memory). Off must match the untraced path within noise.
func BenchmarkProcessBatch(b *testing.B) {
	g, err := loggen.New(loggen.Seed(4))
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, 500)
	for i := range recs {
		recs[i] = &kgo.Record{Value: g.Next(nil), Offset: int64(i)}
	}
	for _, bc := range []struct {
		name string
		tp   *sdktrace.TracerProvider
	}{
		{"tracing=off", nil},
		{"tracing=on", sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := config.Default()
			reg := prometheus.NewRegistry()
			l, self := newTestLive(b, &cfg, reg)
			p := newProcessor(l, self, nil, nil, nil)
			if bc.tp != nil {
				p.tracer = bc.tp.Tracer("bench")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				p.Process(kafka.NewBatch("nginxlog", 0, recs))
			}
			b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
