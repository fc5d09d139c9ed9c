package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
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
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"
)

// testRegistry holds one metric the exporter did not register itself, so a
// test can tell that /metrics serves the caller's registry.
func testRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "accesslog_test_total", Help: "Test counter."})
	c.Add(3)
	reg.MustRegister(c)
	return reg
}

func flags(configFile string, addrs ...string) *web.FlagConfig {
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:0"}
	}
	systemd := false
	return &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &configFile}
}

func get(t *testing.T, h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// run starts s.Run and returns its base URL ("http://127.0.0.1:port"); the
// server is stopped, and Run's result checked, when the test ends.
func run(t *testing.T, s *Server, scheme string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Listen(ctx); err != nil {
		cancel()
		t.Fatalf("Listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel: %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return scheme + "://" + s.Addr().String()
}

func fetch(t *testing.T, c *http.Client, url string, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestMetricsNegotiation(t *testing.T) {
	s := New(Config{}, testRegistry(t), nil, nil)
	for _, tc := range []struct {
		name        string
		accept      string
		contentType string
		bodyHas     []string
		bodyEnd     string
	}{
		{
			name:        "text by default",
			contentType: "text/plain; version=0.0.4",
			bodyHas:     []string{"accesslog_test_total 3\n", "promhttp_metric_handler_requests_total{code=\"200\"}"},
		},
		{
			name:        "openmetrics when asked",
			accept:      "application/openmetrics-text;version=1.0.0",
			contentType: "application/openmetrics-text; version=1.0.0",
			bodyHas:     []string{"accesslog_test_total 3.0\n", "# TYPE accesslog_test counter\n"},
			bodyEnd:     "# EOF\n",
		},
		{
			// What Prometheus sends when native histograms are enabled.
			name:        "protobuf when asked",
			accept:      "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
			contentType: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
			bodyHas:     []string{"accesslog_test_total"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, s.Handler(), "/metrics", "Accept", tc.accept)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200; body:\n%s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want prefix %q", ct, tc.contentType)
			}
			body := rec.Body.String()
			for _, want := range tc.bodyHas {
				if !strings.Contains(body, want) {
					t.Errorf("body lacks %q:\n%s", want, body)
				}
			}
			if !strings.HasSuffix(body, tc.bodyEnd) {
				t.Errorf("body does not end with %q:\n%s", tc.bodyEnd, body)
			}
		})
	}
}

func TestMetricsCountsScrapes(t *testing.T) {
	s := New(Config{}, testRegistry(t), nil, nil)
	get(t, s.Handler(), "/metrics")
	body := get(t, s.Handler(), "/metrics").Body.String()
	// The second scrape sees the first one counted.
	if want := "promhttp_metric_handler_requests_total{code=\"200\"} 1\n"; !strings.Contains(body, want) {
		t.Errorf("body lacks %q:\n%s", want, body)
	}
}

func TestNewTwiceOnOneRegistry(t *testing.T) {
	reg := testRegistry(t)
	New(Config{}, reg, nil, nil)
	s := New(Config{}, reg, nil, nil) // must not panic on promhttp's own metrics
	if rec := get(t, s.Handler(), "/metrics"); rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200", rec.Code)
	}
}

func TestTelemetryPath(t *testing.T) {
	s := New(Config{TelemetryPath: "/prom"}, testRegistry(t), nil, nil)
	if rec := get(t, s.Handler(), "/prom"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "accesslog_test_total") {
		t.Errorf("/prom: status %d, body:\n%s", rec.Code, rec.Body)
	}
	if rec := get(t, s.Handler(), "/metrics"); rec.Code != http.StatusNotFound {
		t.Errorf("/metrics: status %d, want 404", rec.Code)
	}
	if body := get(t, s.Handler(), "/").Body.String(); !strings.Contains(body, `href="/prom"`) {
		t.Errorf("landing page does not link /prom:\n%s", body)
	}
}

func TestHealthz(t *testing.T) {
	never := ReadinessFunc(func() (bool, string) { return false, "never" })
	rec := get(t, New(Config{}, testRegistry(t), never, nil).Handler(), "/healthz")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "ok" {
		t.Errorf("status %d body %q, want 200 \"ok\" even when not ready", rec.Code, rec.Body)
	}
}

type readiness struct {
	mu  sync.Mutex
	ok  bool
	why string
}

func (r *readiness) Ready() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok, r.why
}

func (r *readiness) set(ok bool, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ok, r.why = ok, why
}

func TestReadyz(t *testing.T) {
	r := &readiness{why: "not ready: waiting for group join (brokers: 127.0.0.1:9092)"}
	h := New(Config{}, testRegistry(t), r, nil).Handler()

	rec := get(t, h, "/readyz")
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("not ready: status %d, want 503", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), "waiting for group join (brokers: 127.0.0.1:9092)") {
		t.Errorf("not ready: body %q lacks the reason", rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}

	r.set(true, "joined group accesslog-exporter and fetched at least once")
	rec = get(t, h, "/readyz")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "fetched at least once") {
		t.Errorf("ready: status %d body %q, want 200 with the reason", rec.Code, rec.Body)
	}

	r.set(false, "")
	if rec = get(t, h, "/readyz"); rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) == "" {
		t.Errorf("not ready without reason: status %d body %q, want 503 and some text", rec.Code, rec.Body)
	}
}

func TestReadyzNilReadinessIsReady(t *testing.T) {
	if rec := get(t, New(Config{}, testRegistry(t), nil, nil).Handler(), "/readyz"); rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200", rec.Code)
	}
}

func TestLandingPage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pprof  bool
		has    []string
		hasNot []string
	}{
		{
			name:   "pprof off",
			has:    []string{"accesslog-exporter", "Version: 1.2.3", `href="/metrics"`, `href="/healthz"`, `href="/readyz"`},
			hasNot: []string{"debug/pprof"},
		},
		{
			name:  "pprof on",
			pprof: true,
			has:   []string{`href="/metrics"`, `href="/debug/pprof/"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Config{Version: "1.2.3", EnablePprof: tc.pprof}, testRegistry(t), nil, nil).Handler()
			rec := get(t, h, "/")
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q, want text/html", ct)
			}
			body := rec.Body.String()
			for _, s := range tc.has {
				if !strings.Contains(body, s) {
					t.Errorf("landing page lacks %q:\n%s", s, body)
				}
			}
			for _, s := range tc.hasNot {
				if strings.Contains(body, s) {
					t.Errorf("landing page has %q:\n%s", s, body)
				}
			}
			if rec := get(t, h, "/no-such-page"); rec.Code != http.StatusNotFound {
				t.Errorf("/no-such-page: status %d, want 404", rec.Code)
			}
		})
	}
}

func TestPprof(t *testing.T) {
	for _, tc := range []struct {
		enabled bool
		want    int
	}{
		{enabled: false, want: http.StatusNotFound},
		{enabled: true, want: http.StatusOK},
	} {
		t.Run(fmt.Sprintf("enabled=%v", tc.enabled), func(t *testing.T) {
			h := New(Config{EnablePprof: tc.enabled}, testRegistry(t), nil, nil).Handler()
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
				if rec := get(t, h, path); rec.Code != tc.want {
					t.Errorf("%s: status %d, want %d", path, rec.Code, tc.want)
				}
			}
		})
	}
}

func TestPprofNotOnDefaultMux(t *testing.T) {
	// net/http/pprof registers itself on http.DefaultServeMux when imported;
	// serving that mux by accident would expose profiles with pprof off.
	// web.Serve falls back to the default mux only for a nil Handler.
	s := New(Config{Flags: flags("")}, testRegistry(t), nil, nil)
	base := run(t, s, "http")
	if code, _ := fetch(t, http.DefaultClient, base+"/debug/pprof/", "", ""); code != http.StatusNotFound {
		t.Errorf("status %d, want 404", code)
	}
}

func TestRunServesEveryAddress(t *testing.T) {
	s := New(Config{Flags: flags("", "127.0.0.1:0", "127.0.0.1:0")}, testRegistry(t), nil, nil)
	run(t, s, "http")
	addrs := s.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("Addrs() = %v, want 2 addresses", addrs)
	}
	for _, a := range addrs {
		if code, body := fetch(t, http.DefaultClient, "http://"+a.String()+"/metrics", "", ""); code != http.StatusOK || !strings.Contains(body, "accesslog_test_total 3") {
			t.Errorf("%s/metrics: status %d body:\n%s", a, code, body)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, cfgFile, fmt.Sprintf("basic_auth_users:\n  prometheus: %q\n", hash))

	s := New(Config{Flags: flags(cfgFile)}, testRegistry(t), nil, nil)
	base := run(t, s, "http")
	for _, tc := range []struct {
		name, user, pass string
		want             int
	}{
		{name: "no credentials", want: http.StatusUnauthorized},
		{name: "wrong password", user: "prometheus", pass: "guess", want: http.StatusUnauthorized},
		{name: "unknown user", user: "grafana", pass: "s3cret", want: http.StatusUnauthorized},
		{name: "right credentials", user: "prometheus", pass: "s3cret", want: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := fetch(t, http.DefaultClient, base+"/metrics", tc.user, tc.pass)
			if code != tc.want {
				t.Errorf("status %d, want %d", code, tc.want)
			}
			if tc.want == http.StatusOK && !strings.Contains(body, "accesslog_test_total 3") {
				t.Errorf("body lacks the test metric:\n%s", body)
			}
		})
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and
// returns a pool that trusts it.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "accesslog-exporter test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cert.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, filepath.Join(dir, "key.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	pool := selfSigned(t, dir)
	cfgFile := filepath.Join(dir, "web.yml")
	// Relative paths are resolved against the config file's directory.
	writeFile(t, cfgFile, "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n")

	s := New(Config{Flags: flags(cfgFile)}, testRegistry(t), nil, nil)
	base := run(t, s, "https")

	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(trusting.CloseIdleConnections)
	if code, body := fetch(t, trusting, base+"/metrics", "", ""); code != http.StatusOK || !strings.Contains(body, "accesslog_test_total 3") {
		t.Errorf("https with the cert pool: status %d body:\n%s", code, body)
	}

	// Without the pool the certificate is not trusted.
	untrusting := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(untrusting.CloseIdleConnections)
	if resp, err := untrusting.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("https without the cert pool: status %d, want a certificate error", resp.StatusCode)
	}

	// Plain HTTP reaches a TLS listener; Go answers 400 to it, and never 200.
	plain := "http://" + strings.TrimPrefix(base, "https://") + "/healthz"
	if resp, err := http.Get(plain); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP to the TLS listener: status 200")
		}
	}
}

func TestListenErrors(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yml")
	writeFile(t, badYAML, "no_such_key: 1\n")
	missingCert := filepath.Join(dir, "missing-cert.yml")
	writeFile(t, missingCert, "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n")
	plainHash := filepath.Join(dir, "plain-hash.yml")
	writeFile(t, plainHash, "basic_auth_users:\n  prometheus: not-a-bcrypt-hash\n")

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	noAddrs := flags("")
	*noAddrs.WebListenAddresses = nil

	for _, tc := range []struct {
		name  string
		flags *web.FlagConfig
		is    error
	}{
		{name: "no flags", flags: nil, is: web.ErrMissingFlag},
		{name: "no listen address", flags: noAddrs, is: web.ErrNoListeners},
		{name: "address in use", flags: flags("", busy.Addr().String())},
		{name: "second address in use", flags: flags("", "127.0.0.1:0", busy.Addr().String())},
		{name: "unknown key in web config", flags: flags(badYAML)},
		{name: "missing certificate", flags: flags(missingCert)},
		{name: "password not hashed", flags: flags(plainHash)},
		{name: "web config file missing", flags: flags(filepath.Join(dir, "absent.yml"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{Flags: tc.flags}, testRegistry(t), nil, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := s.Run(ctx)
			if err == nil {
				t.Fatal("Run: nil error, want one")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Run: %v, want %v", err, tc.is)
			}
			if a := s.Addr(); a != nil {
				t.Errorf("Addr() = %v after failed Listen, want nil", a)
			}
		})
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	s := New(Config{Flags: flags("")}, testRegistry(t), nil, nil)
	if s.Addr() != nil {
		t.Errorf("Addr() before Listen = %v, want nil", s.Addr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if code, _ := fetch(t, http.DefaultClient, "http://"+s.Addr().String()+"/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v, want nil on a clean shutdown", err)
		}
	case <-time.After(DefaultShutdownTimeout + 2*time.Second):
		t.Fatal("Run did not return after cancel")
	}
	t.Logf("stopped in %s", time.Since(start))
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepts after Run returned")
	}
}

// blockingCollector holds a scrape until released, standing in for a
// request that outlives the shutdown bound.
type blockingCollector struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

var blockingDesc = prometheus.NewDesc("accesslog_test_blocking", "Blocks.", nil, nil)

func (c *blockingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- blockingDesc }

func (c *blockingCollector) Collect(ch chan<- prometheus.Metric) {
	c.once.Do(func() { close(c.entered) })
	<-c.release
	ch <- prometheus.MustNewConstMetric(blockingDesc, prometheus.GaugeValue, 1)
}

func TestRunShutdownIsBounded(t *testing.T) {
	reg := testRegistry(t)
	bc := &blockingCollector{entered: make(chan struct{}), release: make(chan struct{})}
	reg.MustRegister(bc)
	t.Cleanup(func() { close(bc.release) })

	const bound = 300 * time.Millisecond
	s := New(Config{Flags: flags(""), ShutdownTimeout: bound, Limits: Limits{ScrapeTimeout: -1}}, reg, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	var scrapeErr atomic.Value
	go func() {
		resp, err := http.Get("http://" + s.Addr().String() + "/metrics")
		if err == nil {
			resp.Body.Close()
		}
		scrapeErr.Store(fmt.Sprint(err))
	}()
	select {
	case <-bc.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("scrape never reached the collector")
	}

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run: nil, want an error naming the unfinished shutdown")
		}
		if took := time.Since(start); took < bound {
			t.Errorf("Run returned after %s, before the %s bound: did it wait for the request at all?", took, bound)
		}
	case <-time.After(bound + 3*time.Second):
		t.Fatal("Run did not return within the shutdown bound")
	}
}

// TestScrapedSaysWhenScrapesAreRegular: one scrape is a person, two are a
// scraper; a scrape overdue by twice the gap means the scraper went away.
func TestScrapedSaysWhenScrapesAreRegular(t *testing.T) {
	s := New(Config{}, testRegistry(t), nil, nil)
	var errs []string
	if _, regular := s.Scraped(); regular {
		errs = append(errs, "regular before any scrape")
	}
	before := time.Now()
	get(t, s.Handler(), "/metrics")
	if _, regular := s.Scraped(); regular {
		errs = append(errs, "regular after one scrape")
	}
	get(t, s.Handler(), "/metrics")
	// Served a second apart (the test's two come too quickly to be regular).
	s.scrapes.mu.Lock()
	s.scrapes.recent[0] = s.scrapes.recent[1].Add(-time.Second)
	s.scrapes.mu.Unlock()
	gathered, regular := s.Scraped()
	if !regular {
		errs = append(errs, "not regular after two scrapes")
	}
	if gathered.Before(before) || gathered.After(time.Now()) {
		errs = append(errs, fmt.Sprintf("gathered at %v, want between %v and now", gathered, before))
	}
	// The scrapes stop: overdue once twice the gap has passed.
	s.scrapes.mu.Lock()
	for i := range s.scrapes.recent {
		s.scrapes.recent[i] = s.scrapes.recent[i].Add(-time.Hour)
	}
	s.scrapes.mu.Unlock()
	if _, regular := s.Scraped(); regular {
		errs = append(errs, "regular with the last scrape an hour ago")
	}
	for _, e := range errs {
		t.Error(e)
	}
}
