package loki

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki/lokitest"
)

// tracedAck is a source in a trace, as a kafka.Batch processed with tracing on.
type tracedAck struct {
	countAck
	sc trace.SpanContext
}

func (a *tracedAck) SpanContext() trace.SpanContext { return a.sc }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A push is a loki.push span linked to the Kafka batch span its lines came
// from, with an event per retry; the log of the failed attempt names the
// push's trace id.
func TestPushSpans(t *testing.T) {
	store := newStore(t)
	store.SetFault(lokitest.Status(http.StatusServiceUnavailable).Times(1))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, batchSpan := tp.Tracer("test").Start(t.Context(), "kafka.batch")
	var logs syncBuffer
	c, err := New(testConfig(store.URL()), Options{
		Registerer: prometheus.NewRegistry(),
		Tracer:     tp.Tracer("loki"),
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	defer c.Close()
	src := &tracedAck{sc: batchSpan.SpanContext()}
	addLines(c.NewAppender(), src, 0, 10, "web")
	if err := c.wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	batchSpan.End()

	var pushes []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "loki.push" {
			pushes = append(pushes, s)
		}
	}
	if len(pushes) != 1 {
		t.Fatalf("%d loki.push spans, want 1", len(pushes))
	}
	p := pushes[0]
	if l := p.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != batchSpan.SpanContext().SpanID() {
		t.Errorf("push links %v, want the Kafka batch span", l)
	}
	if ev := p.Events(); len(ev) != 1 || ev[0].Name != "retry" {
		t.Errorf("push events %v, want one retry", ev)
	}
	want := "trace_id=" + p.SpanContext().TraceID().String()
	if !strings.Contains(logs.String(), want) {
		t.Errorf("failed-push log lacks %s:\n%s", want, logs.String())
	}
}
