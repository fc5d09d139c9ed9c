package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// The `make run` path as a user sees it: the real binary with
// --kafka.embedded shows request metrics within seconds, and SIGTERM stops
// it cleanly.
func TestEmbeddedDemo(t *testing.T) {
	cmd, url, exited := startBinary(t, "--kafka.embedded", "--kafka.embedded.rate=2000", "--web.listen-address=127.0.0.1:0")
	requests := regexp.MustCompile(`(?m)^accesslog_http_requests_total\{[^}]*\} (\d+)`)
	// Poll until every expectation holds, then report each that does not.
	var total int
	testbed.Eventually(t, 20*time.Second, func() []string {
		body := scrape(url)
		total = 0
		for _, m := range requests.FindAllStringSubmatch(body, -1) {
			n, _ := strconv.Atoi(m[1])
			total += n
		}
		var mismatches []string
		if total < 1000 {
			mismatches = append(mismatches, fmt.Sprintf("accesslog_http_requests_total reached only %d, want 1000", total))
		}
		if !strings.Contains(body, "accesslog_exporter_records_total") {
			mismatches = append(mismatches, "pipeline self-metrics (accesslog_exporter_records_total) missing")
		}
		return mismatches
	})

	// Both paths run, each in its own group.
	body := scrape(url)
	for _, want := range []string{
		`accesslog_exporter_kafka_consumer_info{consumergroup="accesslog-exporter",sink="metrics"} 1`,
		`accesslog_exporter_kafka_consumer_info{consumergroup="accesslog-exporter-loki",sink="logs"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the demo does not run both members: no %s", want)
		}
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit within 15s of SIGTERM")
	}
	t.Logf("%d requests counted; stopped %v after SIGTERM", total, time.Since(start).Round(time.Millisecond))
}

// SIGHUP and POST /-/reload re-read the file: a bad one is rejected and
// reported by accesslog_exporter_config_last_reload_successful, a good one
// is taken. In embedded mode the reloaded config keeps the demo's brokers
// and log store, so no restart is asked for.
func TestReloadSignalAndEndpoint(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "exporter.yml")
	write(t, cfgFile, "metrics:\n  labels: [vhost, status]\n")
	cmd, url, _ := startBinary(t, "--config.file="+cfgFile, "--kafka.embedded", "--web.enable-lifecycle", "--web.listen-address=127.0.0.1:0")
	waitMetric := func(what, want string) {
		t.Helper()
		testbed.WaitFor(t, fmt.Sprintf("%s: /metrics to show %q", what, want), 15*time.Second, func() bool {
			return strings.Contains(scrape(url), want)
		})
	}
	waitMetric("start", `accesslog_http_requests_total{status="200",vhost=`)

	write(t, cfgFile, "metrics:\n  labels: [vhost, stauts]\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric("bad file on SIGHUP", "accesslog_exporter_config_last_reload_successful 0")

	write(t, cfgFile, "metrics:\n  labels: [vhost, status_class]\n")
	resp, err := http.Post(strings.TrimSuffix(url, "/metrics")+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /-/reload: %s", resp.Status)
	}
	waitMetric("good file on POST", "accesslog_exporter_config_last_reload_successful 1")
	waitMetric("new labels in force", `accesslog_http_requests_total{status_class="2xx",vhost=`)
	if body := scrape(url); !strings.Contains(body, "accesslog_exporter_config_restart_required 0") {
		t.Error("after a reload in embedded mode, accesslog_exporter_config_restart_required is not 0: the reloaded config lost the demo's brokers or log store")
	}
}

func scrape(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// startBinary builds the exporter, runs it with args, and returns it with
// the metrics URL it printed; it is killed when the test ends.
func startBinary(t *testing.T, args ...string) (*exec.Cmd, string, <-chan error) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "accesslog-exporter")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})

	urls := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Metrics:\s+(http://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		exited <- cmd.Wait()
		close(done)
	}()
	var url string
	select {
	case url = <-urls:
	case <-time.After(30 * time.Second):
		t.Fatal("no metrics URL printed within 30s")
	}
	return cmd, url, exited
}
