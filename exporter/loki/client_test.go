package loki

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki/lokitest"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// newStore is the tests' Loki: lokitest's in-process receiver with Loki's
// default limits except the age checks, since the tests push fixed
// timestamps of 2023.
func newStore(t *testing.T) *lokitest.Receiver {
	l := lokitest.LokiDefaults()
	l.RejectOldMaxAge, l.CreationGrace, l.OutOfOrderWindow = 0, 0, 0
	return lokitest.NewReceiver(t, lokitest.WithLimits(l))
}

func testConfig(url string) config.Loki {
	c := config.Default().Loki
	c.URL = url
	c.Batch.MaxBytes = 4096
	c.Batch.MaxWait = 50 * time.Millisecond
	c.Retry.MinBackoff = 10 * time.Millisecond
	c.Retry.MaxBackoff = 50 * time.Millisecond
	c.Timeout = 2 * time.Second
	return c
}

func newClient(t *testing.T, cfg config.Loki) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(cfg, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(c.Close)
	return c, reg
}

// countAck is a source that counts its holders.
type countAck struct{ refs, retains, releases atomic.Int32 }

func (a *countAck) Retain()  { a.refs.Add(1); a.retains.Add(1) }
func (a *countAck) Release() { a.refs.Add(-1); a.releases.Add(1) }

func (a *countAck) held() bool { return a.refs.Load() != 0 }

func addLines(a *Appender, ack Acker, from, n int, host string) {
	a.Append("nginxlog", 3, ack, func() {
		for i := from; i < from+n; i++ {
			a.Add(&Line{
				Time:   time.Unix(1700000000+int64(i), 0),
				Line:   fmt.Appendf(nil, "line %06d %s", i, strings.Repeat("x", 40)),
				Host:   []byte(host),
				VHost:  []byte("www.example.com"),
				Offset: int64(i),
			})
		}
	})
}

func TestPushDeliversEveryLineAndReleasesSources(t *testing.T) {
	store := newStore(t)
	c, reg := newClient(t, testConfig(store.URL()))
	acks := make([]*countAck, 6)
	var wg sync.WaitGroup
	for w := range 2 {
		a := c.NewAppender()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				ack := &countAck{}
				acks[w*3+j] = ack
				addLines(a, ack, (w*3+j)*500, 500, fmt.Sprintf("web-%d", w))
			}
		}()
	}
	wg.Wait()
	if err := c.wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := store.Len(); got != 3000 {
		t.Fatalf("Loki got %d entries, want 3000", got)
	}
	for i, a := range acks {
		if a.held() || a.retains.Load() < 2 {
			t.Errorf("source %d: refs %d after %d retains (a 500-line source spans several 4 KiB batches)", i, a.refs.Load(), a.retains.Load())
		}
	}
	want := `{job="accesslog", host="web-0", parse_status="parsed"}`
	es := store.Stream(want)
	if len(es) != 1500 {
		t.Fatalf("stream %s has %d entries, want 1500; streams: %v", want, len(es), store.Streams())
	}
	// The timestamp tie-break: offset i adds i ns to a whole-second time.
	for _, e := range es {
		var i int
		fmt.Sscanf(e.Line, "line %d", &i)
		if want := time.Unix(1700000000+int64(i), int64(i)); !e.Time.Equal(want) {
			t.Fatalf("entry %d: timestamp %v, want %v", i, e.Time, want)
		}
	}
	if v := counterValue(t, reg, "accesslog_exporter_loki_entries_sent_total", "", ""); v != 3000 {
		t.Errorf("entries_sent_total = %v", v)
	}
	if c.InflightBytes() != 0 {
		t.Errorf("inflight bytes = %d after all acknowledged", c.InflightBytes())
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if label == "" {
				return m.GetCounter().GetValue()
			}
			for _, lp := range m.Label {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestSourcesHeldUntilLokiAcknowledges(t *testing.T) {
	store := newStore(t)
	store.SetFault(lokitest.Status(http.StatusServiceUnavailable))
	c, reg := newClient(t, testConfig(store.URL()))
	a := c.NewAppender()
	ack := &countAck{}
	ack.Retain() // the processor's own reference
	addLines(a, ack, 0, 200, "web")
	ack.Release()
	c.Flush()
	// Wait for a retry: the client has had a 503 and gone on holding.
	testbed.WaitFor(t, "a retried 503", 5*time.Second, func() bool {
		return counterValue(t, reg, "accesslog_exporter_loki_retries_total", "reason", "5xx") >= 2
	})
	if !ack.held() || store.Len() != 0 {
		t.Fatalf("source held %v with %d entries stored while Loki answered 503", ack.held(), store.Len())
	}
	store.SetFault(lokitest.NoFault)
	testbed.WaitFor(t, "source released", 5*time.Second, func() bool { return !ack.held() })
	if got := store.Len(); got != 200 {
		t.Errorf("Loki got %d entries, want 200", got)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	store := newStore(t)
	store.SetFault(lokitest.Status(http.StatusTooManyRequests).RetryAfter("1").Times(1))
	c, reg := newClient(t, testConfig(store.URL()))
	addLines(c.NewAppender(), &countAck{}, 0, 10, "web")
	if err := c.wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	reqs := store.Requests()
	if len(reqs) != 2 || reqs[0].Status != http.StatusTooManyRequests || reqs[1].Status != http.StatusNoContent {
		t.Fatalf("requests %+v, want a 429 then a 204", reqs)
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
	if counterValue(t, reg, "accesslog_exporter_loki_retries_total", "reason", "429") != 1 {
		t.Error("429 retry not counted")
	}
}

func TestBadLineIsIsolatedAndRejected(t *testing.T) {
	store := lokitest.NewReceiver(t, lokitest.WithLimits(lokitest.Limits{MaxLineSize: 1000}))
	cfg := testConfig(store.URL())
	cfg.Batch.MaxBytes = 64 << 10
	c, reg := newClient(t, cfg)
	a := c.NewAppender()
	ack := &countAck{}
	a.Append("nginxlog", 0, ack, func() {
		for i := range 100 {
			line := fmt.Appendf(nil, "line %d", i)
			if i == 37 {
				line = append(line, strings.Repeat("y", 2000)...)
			}
			a.Add(&Line{Time: time.Unix(1700000000, 0), Line: line, Offset: int64(i)})
		}
	})
	if err := c.wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Loki stores the good entries of a push it answers 400; the client
	// cannot know which, so the halves it sends again are duplicates.
	if got := store.DistinctLines(); got != 99 {
		t.Errorf("Loki got %d distinct lines, want the 99 good ones", got)
	}
	if got := store.Len() - store.Duplicates(); got != 99 {
		t.Errorf("Loki got %d entries beyond duplicates, want 99", got)
	}
	if ack.held() {
		t.Error("source still held after the bad line was rejected")
	}
	if v := counterValue(t, reg, "accesslog_exporter_loki_rejected_total", "reason", "line_too_long"); v != 1 {
		t.Errorf("rejected{line_too_long} = %v, want 1", v)
	}
}

func TestSetupErrorsAreRetriedNotRejected(t *testing.T) {
	store := newStore(t)
	store.SetFault(lokitest.Status(http.StatusUnauthorized).Times(3))
	c, reg := newClient(t, testConfig(store.URL()))
	addLines(c.NewAppender(), &countAck{}, 0, 10, "web")
	if err := c.wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if store.Len() != 10 || counterValue(t, reg, "accesslog_exporter_loki_retries_total", "reason", "4xx") != 3 {
		t.Errorf("got %d entries and %v 4xx retries, want 10 and 3", store.Len(), counterValue(t, reg, "accesslog_exporter_loki_retries_total", "reason", "4xx"))
	}
}

func TestDropIsOptInAndCounted(t *testing.T) {
	store := newStore(t)
	store.SetFault(lokitest.Status(http.StatusInternalServerError))
	cfg := testConfig(store.URL())
	cfg.Drop = config.LokiDrop{Enabled: true, MaxAge: 200 * time.Millisecond}
	c, reg := newClient(t, cfg)
	ack := &countAck{}
	addLines(c.NewAppender(), ack, 0, 10, "web")
	if err := c.wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ack.held() || counterValue(t, reg, "accesslog_exporter_loki_dropped_total", "reason", "max_age") != 10 {
		t.Errorf("held %v, dropped %v, want released and 10", ack.held(), counterValue(t, reg, "accesslog_exporter_loki_dropped_total", "reason", "max_age"))
	}
}

func TestCloseAbandonsUnacknowledged(t *testing.T) {
	store := newStore(t)
	store.SetFault(lokitest.Status(http.StatusBadGateway))
	reg := prometheus.NewRegistry()
	c, err := New(testConfig(store.URL()), Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	ack := &countAck{}
	addLines(c.NewAppender(), ack, 0, 10, "web")
	if err := c.wait(ctxTimeout(t, 200*time.Millisecond)); err == nil {
		t.Fatal("Wait returned nil while Loki is down")
	}
	c.Close()
	if !ack.held() {
		t.Error("Close released a source Loki never acknowledged")
	}
}

func TestHeadersAuthTenantAndTLS(t *testing.T) {
	store := newStore(t)
	srv := httptest.NewTLSServer(store.Handler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(srv.URL)
	cfg.Tenant = "edge"
	cfg.TLS.CAFile = ca
	cfg.Auth.BearerTokenFile = token
	cfg.StructuredMetadata = true
	c, _ := newClient(t, cfg)
	a := c.NewAppender()
	a.Append("nginxlog", 4, &countAck{}, func() {
		a.Add(&Line{Time: time.Unix(1700000000, 5e6), Line: []byte("hello"), Offset: 42, TraceID: []byte("4bf92f3577b34da6a3ce929d0e0e4736"), Unparsed: true})
	})
	if err := c.wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	h := store.Requests()[0].Header
	if h.Get("X-Scope-OrgID") != "edge" || h.Get("Authorization") != "Bearer s3cret" || h.Get("Content-Type") != "application/x-protobuf" {
		t.Errorf("headers: %v", h)
	}
	es := store.Stream(`{job="accesslog", parse_status="unparsed"}`)
	if len(es) != 1 {
		t.Fatalf("streams: %v", store.Streams())
	}
	got := fmt.Sprint(es[0].Metadata)
	if want := "[{topic nginxlog} {partition 4} {offset 42} {trace_id 4bf92f3577b34da6a3ce929d0e0e4736}]"; got != want {
		t.Errorf("structured metadata %s, want %s", got, want)
	}
	// 5 ms has a sub-millisecond part of zero: the offset is the tie-break.
	if want := time.Unix(1700000000, 5e6+42); !es[0].Time.Equal(want) {
		t.Errorf("timestamp %v, want %v", es[0].Time, want)
	}
}

func TestStreamLimitFoldsIntoOther(t *testing.T) {
	store := newStore(t)
	cfg := testConfig(store.URL())
	cfg.Labels.MaxStreams = 3
	cfg.Labels.VHost = true
	c, _ := newClient(t, cfg)
	a := c.NewAppender()
	a.Append("t", 0, &countAck{}, func() {
		for i := range 10 {
			a.Add(&Line{Time: time.Unix(1700000000, 0), Line: []byte("l"), Host: fmt.Appendf(nil, "h%d", i), VHost: []byte("v"), Offset: int64(i)})
		}
	})
	if err := c.wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(store.Streams()) != 4 || len(store.Stream(`{job="accesslog", host="__other__", vhost="__other__", parse_status="parsed"}`)) != 7 {
		t.Errorf("streams: %v", store.Streams())
	}
}

// TestConsecutiveLinesKeepTheirStreams covers Add's cache of the last
// line's stream: a line that differs from the one before in any label
// (host, vhost, parse status, a host past the clip length) gets its own.
func TestConsecutiveLinesKeepTheirStreams(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1")
	cfg.Batch.MaxBytes = 1 << 20
	cfg.Labels.VHost = true
	c, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("h", maxLabelValue)
	lines := []struct {
		host, vhost string
		unparsed    bool
		want        string
	}{
		{"a", "v", false, `{job="accesslog", host="a", vhost="v", parse_status="parsed"}`},
		{"a", "v", false, `{job="accesslog", host="a", vhost="v", parse_status="parsed"}`},
		{"b", "v", false, `{job="accesslog", host="b", vhost="v", parse_status="parsed"}`},
		{"b", "w", false, `{job="accesslog", host="b", vhost="w", parse_status="parsed"}`},
		{"b", "w", true, `{job="accesslog", host="b", vhost="w", parse_status="unparsed"}`},
		{"b", "", true, `{job="accesslog", host="b", parse_status="unparsed"}`},
		{"", "", true, `{job="accesslog", parse_status="unparsed"}`},
		{long + "x", "", false, `{job="accesslog", host="` + long + `", parse_status="parsed"}`},
		{long + "y", "", false, `{job="accesslog", host="` + long + `", parse_status="parsed"}`},
		{"a", "v", false, `{job="accesslog", host="a", vhost="v", parse_status="parsed"}`},
	}
	a := c.NewAppender()
	a.Append("t", 0, &countAck{}, func() {
		for i, l := range lines {
			a.Add(&Line{Time: time.Unix(1700000000, 0), Line: []byte("l"), Host: []byte(l.host), VHost: []byte(l.vhost), Unparsed: l.unparsed, Offset: int64(i)})
		}
	})
	c.Flush()
	b := c.dequeue()
	if b == nil || len(b.entries) != len(lines) {
		t.Fatalf("batch %v, want %d entries", b, len(lines))
	}
	for i, l := range lines {
		if got := c.streams.label(b.entries[i].stream); got != l.want {
			t.Errorf("line %d: stream %s, want %s", i, got, l.want)
		}
	}
}
