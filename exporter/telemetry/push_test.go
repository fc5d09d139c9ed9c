package telemetry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/component"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testenv"
)

// victoriaMetrics starts the single-node binary that
// scripts/install-victoriametrics.sh builds, on a free loopback port, and
// returns its base URL. `make test` builds it first; a bare `go test` skips.
func victoriaMetrics(t *testing.T) string {
	t.Helper()
	bin := testenv.Binary(t, "ACCESSLOG_VM_BIN", "victoriametrics")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "-httpListenAddr="+addr, "-storageDataPath="+t.TempDir(),
		"-search.latencyOffset=0s", "-loggerLevel=ERROR", "-retentionPeriod=1d")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	base := "http://" + addr
	testbed.WaitFor(t, "VictoriaMetrics /health", 30*time.Second, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return base
}

func TestPushToVictoriaMetrics(t *testing.T) {
	base := victoriaMetrics(t)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "accesslog_http_requests_total", Help: "test"}, []string{"vhost", "status"})
	reg.MustRegister(c)
	c.WithLabelValues("shop.example.com", "200").Add(1234)
	c.WithLabelValues("api.example.com", "503").Add(7)

	cfg := config.Default().Push
	cfg.URL = base + "/api/v1/import/prometheus"
	cfg.ExtraLabels = []string{"dc=eu-1", "replica=a"}
	p, err := NewPusher(cfg, reg, reg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Push(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(p.pushes.WithLabelValues("success")); got != 1 {
		t.Errorf("successful pushes = %v, want 1", got)
	}

	// Query the series back, with the extra labels on them, and the
	// pusher's own counter, which went along: poll until every expectation
	// holds (VictoriaMetrics makes rows searchable a little later), then
	// report every one that does not.
	queries := []struct {
		match string
		want  []string
	}{
		{`accesslog_http_requests_total{dc="eu-1",replica="a"}`,
			[]string{`"vhost":"shop.example.com"`, `"status":"200"`, `"values":[1234]`, `"vhost":"api.example.com"`, `"values":[7]`}},
		{`accesslog_exporter_push_total{result="failure"}`, []string{`"dc":"eu-1"`}},
	}
	testbed.Eventually(t, 20*time.Second, func() []string {
		var missing []string
		for _, q := range queries {
			body := export(base, q.match)
			for _, w := range q.want {
				if !strings.Contains(body, w) {
					missing = append(missing, fmt.Sprintf("export of %s lacks %s:\n%s", q.match, w, body))
				}
			}
		}
		return missing
	})
}

// export is VictoriaMetrics' /api/v1/export for one series selector, or the
// error as text.
func export(base, match string) string {
	resp, err := http.Get(base + "/api/v1/export?match[]=" + url.QueryEscape(match))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestPushFailureIsCounted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	reg := prometheus.NewRegistry()
	cfg := config.Default().Push
	cfg.URL = "http://user:secret@127.0.0.1:" + strconv.Itoa(port) + "/api/v1/import/prometheus"
	cfg.Timeout = time.Second
	var logs bytes.Buffer
	components := component.NewSet()
	reg.MustRegister(components)
	p, err := NewPusher(cfg, reg, reg, slog.New(slog.NewTextHandler(&logs, nil)), components.Component("push"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Push(context.Background()); err == nil {
		t.Fatal("push to a closed port succeeded")
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP accesslog_exporter_component_success 1 if the component's last cycle succeeded, else 0: a commit for a Kafka consumer, a push for the log store and push, a poll for the health poller, an export for tracing.
# TYPE accesslog_exporter_component_success gauge
accesslog_exporter_component_success{component="push"} 0
`), "accesslog_exporter_component_success"); err != nil {
		t.Error(err)
	}
	if strings.Contains(logs.String(), "secret") {
		t.Errorf("the push failure is logged with the password:\n%s", logs.String())
	}
	if got := testutil.ToFloat64(p.pushes.WithLabelValues("failure")); got != 1 {
		t.Errorf("failed pushes = %v, want 1", got)
	}
	if r := config.RedactURL(cfg.URL); strings.Contains(r, "secret") {
		t.Errorf("redact(%q) = %q still shows the password", cfg.URL, r)
	}
}

func TestPushBearerToken(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Method + " " + r.Header.Get("Authorization") + " " + r.Header.Get("Content-Encoding")
		w.WriteHeader(http.StatusNoContent)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	cfg := config.Default().Push
	cfg.URL = "http://" + l.Addr().String() + "/metrics/job/accesslog-exporter"
	cfg.Method = "PUT"
	cfg.BearerTokenFile = tok
	p, err := NewPusher(cfg, reg, reg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Push(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r != "PUT Bearer s3cret gzip" {
		t.Errorf("request = %q, want PUT with the bearer token, gzipped", r)
	}
}

// pushgateway starts the Debian Pushgateway that scripts/install-pushgateway.sh
// installs, on a free loopback port, and returns its base URL.
func pushgateway(t *testing.T) string {
	t.Helper()
	// The Makefile names the binary; a plain `go test` looks on PATH.
	var bin string
	if os.Getenv("ACCESSLOG_PUSHGATEWAY_BIN") != "" {
		bin = testenv.Binary(t, "ACCESSLOG_PUSHGATEWAY_BIN", "pushgateway")
	} else {
		bin = testenv.LookPath(t, "prometheus-pushgateway", "pushgateway")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--web.listen-address="+addr, "--log.level=error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + addr
	testbed.WaitFor(t, "Pushgateway /-/ready", 30*time.Second, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return base
}

// Push mode to a real Pushgateway: the grouping key is the URL path
// (/metrics/job/J/instance/I), PUT replaces the group at every push, and the
// series come back from the Pushgateway's /metrics with the group's labels
// and the extra labels.
func TestPushToPushgateway(t *testing.T) {
	base := pushgateway(t)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "accesslog_http_requests_total", Help: "test"}, []string{"vhost", "status"})
	reg.MustRegister(c)
	c.WithLabelValues("shop.example.com", "200").Add(1234)
	c.WithLabelValues("api.example.com", "503").Add(7)

	cfg := config.Default().Push
	cfg.URL = base + "/metrics/job/accesslog-exporter/instance/replica-a"
	cfg.Method = "PUT"
	cfg.ExtraLabels = []string{"dc=eu-1"}
	p, err := NewPusher(cfg, reg, reg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second PUT replaces the group, it does not fail on it
		if err := p.Push(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(p.pushes.WithLabelValues("success")); got != 2 {
		t.Errorf("successful pushes = %v, want 2", got)
	}
	wants := []string{
		`accesslog_http_requests_total{dc="eu-1",instance="replica-a",job="accesslog-exporter",status="200",vhost="shop.example.com"} 1234`,
		`accesslog_http_requests_total{dc="eu-1",instance="replica-a",job="accesslog-exporter",status="503",vhost="api.example.com"} 7`,
		`accesslog_exporter_push_total{dc="eu-1",instance="replica-a",job="accesslog-exporter",result="success"} 1`,
		`push_time_seconds{instance="replica-a",job="accesslog-exporter"}`,
	}
	// Poll until every series is there, then report each one missing.
	testbed.Eventually(t, 10*time.Second, func() []string {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return []string{err.Error()}
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var missing []string
		for _, w := range wants {
			if !strings.Contains(string(b), w) {
				missing = append(missing, "Pushgateway /metrics lacks "+w)
			}
		}
		if len(missing) > 0 {
			missing = append(missing, "Pushgateway /metrics:\n"+string(b))
		}
		return missing
	})
}
