package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// bigRegistry stands in for a full series budget: histograms by vhost and
// status, about mb megabytes of text exposition.
func bigRegistry(t *testing.T, mb int) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "accesslog_http_request_duration_seconds",
		Help:    "Request time.",
		Buckets: prometheus.DefBuckets,
	}, []string{"vhost", "method", "status"})
	reg.MustRegister(h)
	// One series is ~14 lines of ~110 bytes.
	for i := range mb * 1000 * 1000 / 1500 {
		h.WithLabelValues(fmt.Sprintf("shop-%06d.example.com", i), "GET", "200").Observe(0.1)
	}
	return reg
}

func startServer(t *testing.T, cfg Config, reg *prometheus.Registry) (*Server, string) {
	t.Helper()
	cfg.Flags = flags("")
	s := New(cfg, reg, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s, s.Addr().String()
}

// slowReader sends GET path and never reads the answer, with a receive
// buffer as small as the kernel allows, as the clients of issue 13 did.
func slowReader(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: nil}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetReadBuffer(1024)
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// healthProbe asks /healthz on a fresh connection every 50ms until stop,
// and returns what failed.
func healthProbe(addr string, stop <-chan struct{}) func() []string {
	var mu sync.Mutex
	var failures []string
	var probes int
	done := make(chan struct{})
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		defer close(done)
		for {
			if probes > 0 {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			probes++
			resp, err := client.Get("http://" + addr + "/healthz")
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				mu.Lock()
				failures = append(failures, resp.Status)
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		<-done
		if probes == 0 {
			return []string{"no probe ran"}
		}
		return failures
	}
}

func heapInuse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Issue 13, defect 2: every concurrent or slow scraper cost a whole
// buffered body. Now N slow readers and M parallel scrapes share at most
// MaxEncodings bodies; the heap may grow by those bodies plus one gather's
// families, stated below as a multiple of the body, and /healthz answers
// throughout.
func TestSlowReadersAndParallelScrapesBoundMemory(t *testing.T) {
	mb := 12 // ACCESSLOG_SCRAPE_MB=100 measures a full series budget
	if v, err := strconv.Atoi(os.Getenv("ACCESSLOG_SCRAPE_MB")); err == nil && v > 0 {
		mb = v
	}
	reg := bigRegistry(t, mb)
	_, addr := startServer(t, Config{Limits: Limits{MaxRequestsInFlight: 60, WriteTimeout: time.Minute}}, reg)
	plain := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	scrape := func() (int, int64, error) {
		resp, err := plain.Get("http://" + addr + "/metrics")
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, n, err
	}
	_, size, err := scrape()
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	base := heapInuse()
	t.Logf("exposition %.1f MB, heap in use after one scrape %.1f MB", float64(size)/1e6, float64(base)/1e6)

	stop := make(chan struct{})
	failed := healthProbe(addr, stop)
	var peak atomic.Uint64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if h := heapInuse(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	const slow, parallel, rounds = 20, 8, 3
	for range slow {
		slowReader(t, addr, "/metrics")
	}
	var wg sync.WaitGroup
	var scrapeErrs []string
	var mu sync.Mutex
	for range parallel {
		wg.Go(func() {
			for range rounds {
				code, n, err := scrape()
				if err != nil || code != http.StatusOK || n < size/2 {
					mu.Lock()
					scrapeErrs = append(scrapeErrs, fmt.Sprintf("code %d, %d bytes, err %v", code, n, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	probeFailures := failed()

	grew := int64(peak.Load()) - int64(base)
	// Two bodies (MaxEncodings) and the families of one gather, which
	// client_golang holds at about three times the text they encode to.
	bound := 6 * size
	t.Logf("%d slow readers, %d parallel scrapers x %d: heap grew by %.1f MB at its peak (bound %.1f MB); peak RSS of the test process %s",
		slow, parallel, rounds, float64(grew)/1e6, float64(bound)/1e6, peakRSS())
	if grew > bound {
		t.Errorf("heap grew by %.1f MB, more than %.1f MB (6 bodies of %.1f MB)", float64(grew)/1e6, float64(bound)/1e6, float64(size)/1e6)
	}
	for _, e := range scrapeErrs {
		t.Errorf("parallel scrape: %s", e)
	}
	for _, f := range probeFailures {
		t.Errorf("/healthz during the scrapes: %s", f)
	}
}

// Issue 13: with 60 slow readers a 61st scrape still got 200, because the
// buffered handler had returned its slot before the body was sent.
func TestInFlightLimitHoldsWithSlowReaders(t *testing.T) {
	reg := bigRegistry(t, 8)
	s, addr := startServer(t, Config{Limits: Limits{MaxRequestsInFlight: 60, WriteTimeout: time.Minute}}, reg)
	slow := make([]net.Conn, 60)
	for i := range slow {
		slow[i] = slowReader(t, addr, "/metrics")
	}
	// Each holds its slot once its answer has begun: read just the status
	// line's start.
	for i, c := range slow {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b := make([]byte, 12)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "HTTP/1.1 200" {
			t.Fatalf("slow reader %d: %q, %v", i, b, err)
		}
	}
	stop := make(chan struct{})
	failed := healthProbe(addr, stop)
	code, body := fetch(t, http.DefaultClient, "http://"+addr+"/metrics", "", "")
	close(stop)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "Limit of concurrent requests reached (60)") {
		t.Errorf("61st scrape: %d %q, want 503 naming the limit", code, firstLine(body))
	}
	if got := testutil.ToFloat64(s.rejected.WithLabelValues("in_flight")); got < 1 {
		t.Errorf(`accesslog_exporter_http_rejected_total{reason="in_flight"} = %v, want >= 1`, got)
	}
	for _, f := range failed() {
		t.Errorf("/healthz with 60 slow readers: %s", f)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// Issue 13: nothing cut a scraper that stopped reading, so it held its body
// for as long as it stayed connected. Now it holds a slot of the in-flight
// limit until the write timeout cuts it, and then the slot is free again.
func TestWriteTimeoutFreesAStalledReadersSlot(t *testing.T) {
	reg := bigRegistry(t, 8)
	const writeTimeout = 5 * time.Second
	_, addr := startServer(t, Config{Limits: Limits{MaxRequestsInFlight: 1, WriteTimeout: writeTimeout}}, reg)
	// The stalled reader must hold the slot before our scrapes start: on a
	// loaded machine our first scrape could reach the server first, take
	// the slot and leave the stalled reader a 503 (one failure: answers
	// [200] for a minute). Its status line says it has the slot.
	c := slowReader(t, addr, "/metrics")
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	status := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(c, status); err != nil || string(status) != "HTTP/1.1 200" {
		t.Fatalf("the stalled reader's answer begins %q (%v), want HTTP/1.1 200", status, err)
	}
	var codes []int
	var refused, freed time.Time
	testbed.Eventually(t, 60*time.Second, func() []string {
		// Our own scrape is cut too if encoding its 8 MB takes longer
		// than the write timeout (a loaded machine, -race): that is a
		// turn without an answer, not the end of the test.
		code := 0
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			if _, err := io.Copy(io.Discard, resp.Body); err == nil {
				code = resp.StatusCode
			}
			resp.Body.Close()
		}
		if len(codes) == 0 || codes[len(codes)-1] != code {
			codes = append(codes, code)
		}
		if code == http.StatusServiceUnavailable && refused.IsZero() {
			refused = time.Now()
		}
		if code == http.StatusOK && !refused.IsZero() {
			freed = time.Now()
			return nil
		}
		return []string{fmt.Sprintf("scrape answers in turn %v (0: cut before the body ended): want 503, then 200 once the write timeout cuts the stalled reader", codes)}
	})
	// 503 while the stalled reader holds the only slot, for at least the
	// write timeout (before, only while its body was being encoded), then
	// 200 once the timeout cut it.
	if refused.IsZero() || freed.IsZero() || freed.Sub(refused) < writeTimeout-time.Second {
		t.Errorf("scrape answers in turn %v, refused for %v: want 503 for about the %v write timeout, then 200",
			codes, freed.Sub(refused).Round(time.Millisecond), writeTimeout)
	}
	t.Logf("answers %v; refused for %v", codes, freed.Sub(refused).Round(time.Millisecond))
}

// Issue 13: 20,000 idle keep-alive connections used up the file
// descriptors. At the limit the connection idle longest is closed.
func TestIdleConnectionsClosedAtTheLimit(t *testing.T) {
	const limit, opened = 20, 60
	s, addr := startServer(t, Config{Limits: Limits{MaxConnections: limit}}, prometheus.NewRegistry())
	conns := make([]net.Conn, 0, opened)
	for range opened {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		// One request, answered; then the connection idles, kept alive.
		if _, err := fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// A window of a kilobyte takes the kernel's silly-window avoidance
		// minutes to fill: read at full speed now.
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 20)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		conns = append(conns, &bufConn{Conn: c, r: br})
	}
	// A probe on a new connection still answers.
	if code, _ := fetch(t, &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}, "http://"+addr+"/healthz", "", ""); code != http.StatusOK {
		t.Errorf("/healthz with %d idle connections: %d", opened, code)
	}
	closed := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			closed++
		}
	}
	if want := opened - limit; closed < want {
		t.Errorf("server closed %d of %d idle connections, want at least %d (limit %d)", closed, opened, want, limit)
	}
	if got := testutil.ToFloat64(s.rejected.WithLabelValues("idle_closed")); got < float64(opened-limit) {
		t.Errorf(`accesslog_exporter_http_rejected_total{reason="idle_closed"} = %v, want >= %d`, got, opened-limit)
	}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// peakRSS is the process's VmHWM from /proc, for the log.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

type panickingExposition struct{}

func (panickingExposition) Exposition(expfmt.Format, bool) (iter.Seq2[string, []byte], error) {
	panic("boom")
}

// Encoding runs outside the handler, where net/http's recover no longer
// reaches: a panic there is a 500, not a crash.
func TestEncodingPanicIs500(t *testing.T) {
	s := New(Config{Expositions: []Exposition{panickingExposition{}}}, testRegistry(t), nil, nil)
	rec := get(t, s.Handler(), "/metrics")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "panicked: boom") {
		t.Errorf("status %d, body %q: want 500 naming the panic", rec.Code, rec.Body.String())
	}
}

// Scrapes of a 13 MB exposition, one at a time and eight at once: with
// one shared encoding, concurrent scrapes cost about one gather.
//
//	go test -run '^$' -bench Scrape -benchtime 20x -count 5 ./exporter/server/
func BenchmarkScrape(b *testing.B) {
	reg := bigRegistry(&testing.T{}, 12)
	h := New(Config{}, reg, nil, nil).Handler()
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var wg sync.WaitGroup
				for range par {
					wg.Go(func() {
						req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
						h.ServeHTTP(discardWriter{header: http.Header{}}, req)
					})
				}
				wg.Wait()
			}
		})
	}
}

type discardWriter struct{ header http.Header }

func (d discardWriter) Header() http.Header         { return d.header }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

// Connections that never send a request (slowloris) take no room from the
// probes: at the limit the oldest of them is closed for a new one.
func TestSilentConnectionsDoNotStarveProbes(t *testing.T) {
	const limit = 10
	_, addr := startServer(t, Config{Limits: Limits{MaxConnections: limit, ReadHeaderTimeout: time.Minute}}, prometheus.NewRegistry())
	for range 3 * limit {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := fetch(t, client, "http://"+addr+path, "", ""); code != http.StatusOK {
			t.Errorf("%s with %d silent connections: %d %s", path, 3*limit, code, body)
		}
	}
}
