package loki

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// fakeLoki decodes pushes as Loki would and answers with what respond says.
type fakeLoki struct {
	t       *testing.T
	mu      sync.Mutex
	streams map[string][]push.Entry
	headers []http.Header
	pushes  int
	// respond, when set, decides the answer to a decoded push; nil accepts.
	respond func(req *push.PushRequest, w http.ResponseWriter) bool
}

func (f *fakeLoki) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != PushPath || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad path or type", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req push.PushRequest
	if err := req.Unmarshal(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.pushes++
	f.headers = append(f.headers, r.Header.Clone())
	respond := f.respond
	f.mu.Unlock()
	if respond != nil && respond(&req, w) {
		return
	}
	f.mu.Lock()
	for _, s := range req.Streams {
		f.streams[s.Labels] = append(f.streams[s.Labels], s.Entries...)
	}
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeLoki) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, es := range f.streams {
		n += len(es)
	}
	return n
}

func (f *fakeLoki) setRespond(fn func(req *push.PushRequest, w http.ResponseWriter) bool) {
	f.mu.Lock()
	f.respond = fn
	f.mu.Unlock()
}

func newFake(t *testing.T) (*fakeLoki, *httptest.Server) {
	f := &fakeLoki{t: t, streams: map[string][]push.Entry{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
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

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func addLines(a *Appender, ack Acker, from, n int, host string) {
	a.Begin("nginxlog", 3, ack)
	for i := from; i < from+n; i++ {
		a.Add(&Line{
			Time:   time.Unix(1700000000+int64(i), 0),
			Line:   fmt.Appendf(nil, "line %06d %s", i, strings.Repeat("x", 40)),
			Host:   []byte(host),
			VHost:  []byte("www.example.com"),
			Offset: int64(i),
		})
	}
	a.End()
}

func TestPushDeliversEveryLineAndReleasesSources(t *testing.T) {
	f, srv := newFake(t)
	c, reg := newClient(t, testConfig(srv.URL))
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
	if err := c.Wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := f.count(); got != 3000 {
		t.Fatalf("Loki got %d entries, want 3000", got)
	}
	for i, a := range acks {
		if a.held() || a.retains.Load() < 2 {
			t.Errorf("source %d: refs %d after %d retains (a 500-line source spans several 4 KiB batches)", i, a.refs.Load(), a.retains.Load())
		}
	}
	want := `{job="accesslog", host="web-0", parse_status="parsed"}`
	es := f.streams[want]
	if len(es) != 1500 {
		t.Fatalf("stream %s has %d entries, want 1500; streams: %v", want, len(es), keys(f.streams))
	}
	// The timestamp tie-break: offset i adds i ns to a whole-second time.
	for _, e := range es {
		var i int
		fmt.Sscanf(e.Line, "line %d", &i)
		if want := time.Unix(1700000000+int64(i), int64(i)); !e.Timestamp.Equal(want) {
			t.Fatalf("entry %d: timestamp %v, want %v", i, e.Timestamp, want)
		}
	}
	if v := counterValue(t, reg, "accesslog_exporter_loki_entries_sent_total", "", ""); v != 3000 {
		t.Errorf("entries_sent_total = %v", v)
	}
	if c.InflightBytes() != 0 {
		t.Errorf("inflight bytes = %d after all acknowledged", c.InflightBytes())
	}
}

func keys(m map[string][]push.Entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
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
	f, srv := newFake(t)
	var fail atomic.Bool
	fail.Store(true)
	f.setRespond(func(_ *push.PushRequest, w http.ResponseWriter) bool {
		if fail.Load() {
			http.Error(w, "ingester unavailable", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	c, reg := newClient(t, testConfig(srv.URL))
	a := c.NewAppender()
	ack := &countAck{}
	ack.Retain() // the processor's own reference
	addLines(a, ack, 0, 200, "web")
	ack.Release()
	c.Flush()
	time.Sleep(300 * time.Millisecond)
	if !ack.held() {
		t.Fatal("source released while Loki answered 503")
	}
	if counterValue(t, reg, "accesslog_exporter_loki_retries_total", "reason", "5xx") == 0 {
		t.Error("no 5xx retries counted")
	}
	fail.Store(false)
	waitFor(t, "source released", 5*time.Second, func() bool { return !ack.held() })
	if got := f.count(); got != 200 {
		t.Errorf("Loki got %d entries, want 200", got)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	f, srv := newFake(t)
	var first atomic.Int64
	var second atomic.Int64
	f.setRespond(func(_ *push.PushRequest, w http.ResponseWriter) bool {
		if first.CompareAndSwap(0, time.Now().UnixNano()) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate limited", http.StatusTooManyRequests)
			return true
		}
		second.CompareAndSwap(0, time.Now().UnixNano())
		return false
	})
	c, reg := newClient(t, testConfig(srv.URL))
	addLines(c.NewAppender(), &countAck{}, 0, 10, "web")
	if err := c.Wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if gap := time.Duration(second.Load() - first.Load()); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
	if counterValue(t, reg, "accesslog_exporter_loki_retries_total", "reason", "429") != 1 {
		t.Error("429 retry not counted")
	}
}

func TestBadLineIsIsolatedAndRejected(t *testing.T) {
	f, srv := newFake(t)
	f.setRespond(func(req *push.PushRequest, w http.ResponseWriter) bool {
		for _, s := range req.Streams {
			for _, e := range s.Entries {
				if len(e.Line) > 1000 {
					http.Error(w, fmt.Sprintf("Max entry size '1000' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes", s.Labels, len(e.Line)), http.StatusBadRequest)
					return true
				}
			}
		}
		return false
	})
	cfg := testConfig(srv.URL)
	cfg.Batch.MaxBytes = 64 << 10
	c, reg := newClient(t, cfg)
	a := c.NewAppender()
	ack := &countAck{}
	a.Begin("nginxlog", 0, ack)
	for i := range 100 {
		line := fmt.Appendf(nil, "line %d", i)
		if i == 37 {
			line = append(line, strings.Repeat("y", 2000)...)
		}
		a.Add(&Line{Time: time.Unix(1700000000, 0), Line: line, Offset: int64(i)})
	}
	a.End()
	if err := c.Wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := f.count(); got != 99 {
		t.Errorf("Loki got %d entries, want the 99 good ones", got)
	}
	if ack.held() {
		t.Error("source still held after the bad line was rejected")
	}
	if v := counterValue(t, reg, "accesslog_exporter_loki_rejected_total", "reason", "line_too_long"); v != 1 {
		t.Errorf("rejected{line_too_long} = %v, want 1", v)
	}
}

func TestSetupErrorsAreRetriedNotRejected(t *testing.T) {
	f, srv := newFake(t)
	var n atomic.Int32
	f.setRespond(func(_ *push.PushRequest, w http.ResponseWriter) bool {
		if n.Add(1) <= 3 {
			http.Error(w, "no org id", http.StatusUnauthorized)
			return true
		}
		return false
	})
	c, reg := newClient(t, testConfig(srv.URL))
	addLines(c.NewAppender(), &countAck{}, 0, 10, "web")
	if err := c.Wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if f.count() != 10 || counterValue(t, reg, "accesslog_exporter_loki_retries_total", "reason", "4xx") != 3 {
		t.Errorf("got %d entries and %v 4xx retries, want 10 and 3", f.count(), counterValue(t, reg, "accesslog_exporter_loki_retries_total", "reason", "4xx"))
	}
}

func TestDropIsOptInAndCounted(t *testing.T) {
	_, srv := newFake(t)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	})
	cfg := testConfig(srv.URL)
	cfg.Drop = config.LokiDrop{Enabled: true, MaxAge: 200 * time.Millisecond}
	c, reg := newClient(t, cfg)
	ack := &countAck{}
	addLines(c.NewAppender(), ack, 0, 10, "web")
	if err := c.Wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ack.held() || counterValue(t, reg, "accesslog_exporter_loki_dropped_total", "reason", "max_age") != 10 {
		t.Errorf("held %v, dropped %v, want released and 10", ack.held(), counterValue(t, reg, "accesslog_exporter_loki_dropped_total", "reason", "max_age"))
	}
}

func TestCloseAbandonsUnacknowledged(t *testing.T) {
	_, srv := newFake(t)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	reg := prometheus.NewRegistry()
	c, err := New(testConfig(srv.URL), Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	ack := &countAck{}
	addLines(c.NewAppender(), ack, 0, 10, "web")
	if err := c.Wait(ctxTimeout(t, 200*time.Millisecond)); err == nil {
		t.Fatal("Wait returned nil while Loki is down")
	}
	c.Close()
	if !ack.held() {
		t.Error("Close released a source Loki never acknowledged")
	}
}

func TestHeadersAuthTenantAndTLS(t *testing.T) {
	f := &fakeLoki{t: t, streams: map[string][]push.Entry{}}
	srv := httptest.NewTLSServer(f)
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
	a.Begin("nginxlog", 4, &countAck{})
	a.Add(&Line{Time: time.Unix(1700000000, 5e6), Line: []byte("hello"), Offset: 42, TraceID: []byte("4bf92f3577b34da6a3ce929d0e0e4736"), Unparsed: true})
	a.End()
	if err := c.Wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	h := f.headers[0]
	if h.Get("X-Scope-OrgID") != "edge" || h.Get("Authorization") != "Bearer s3cret" {
		t.Errorf("headers: %v", h)
	}
	es := f.streams[`{job="accesslog", parse_status="unparsed"}`]
	if len(es) != 1 {
		t.Fatalf("streams: %v", keys(f.streams))
	}
	got := fmt.Sprint(es[0].StructuredMetadata)
	if want := "[{topic nginxlog} {partition 4} {offset 42} {trace_id 4bf92f3577b34da6a3ce929d0e0e4736}]"; got != want {
		t.Errorf("structured metadata %s, want %s", got, want)
	}
	// 5 ms has a sub-millisecond part of zero: the offset is the tie-break.
	if want := time.Unix(1700000000, 5e6+42); !es[0].Timestamp.Equal(want) {
		t.Errorf("timestamp %v, want %v", es[0].Timestamp, want)
	}
}

func TestStreamLimitFoldsIntoOther(t *testing.T) {
	f, srv := newFake(t)
	cfg := testConfig(srv.URL)
	cfg.Labels.MaxStreams = 3
	cfg.Labels.VHost = true
	c, _ := newClient(t, cfg)
	a := c.NewAppender()
	a.Begin("t", 0, &countAck{})
	for i := range 10 {
		a.Add(&Line{Time: time.Unix(1700000000, 0), Line: []byte("l"), Host: fmt.Appendf(nil, "h%d", i), VHost: []byte("v"), Offset: int64(i)})
	}
	a.End()
	if err := c.Wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(f.streams) != 4 || len(f.streams[`{job="accesslog", host="__other__", vhost="__other__", parse_status="parsed"}`]) != 7 {
		t.Errorf("streams: %v", keys(f.streams))
	}
}
