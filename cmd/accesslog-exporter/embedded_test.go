package main

import (
	"bufio"
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
)

// The `make run` path as a user sees it: the real binary with
// --kafka.embedded shows request metrics within seconds, and SIGTERM stops
// it cleanly.
func TestEmbeddedDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "accesslog-exporter")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--kafka.embedded", "--kafka.embedded.rate=2000", "--web.listen-address=127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	defer func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}()

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
	}()
	var url string
	select {
	case url = <-urls:
	case <-time.After(30 * time.Second):
		t.Fatal("no metrics URL printed within 30s")
	}

	requests := regexp.MustCompile(`(?m)^accesslog_http_requests_total\{[^}]*\} (\d+)`)
	deadline := time.Now().Add(20 * time.Second)
	var total int
	for total < 1000 {
		if time.Now().After(deadline) {
			t.Fatalf("accesslog_http_requests_total reached only %d within 20s", total)
		}
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		total = 0
		for _, m := range requests.FindAllStringSubmatch(string(body), -1) {
			n, _ := strconv.Atoi(m[1])
			total += n
		}
		if !strings.Contains(string(body), "accesslog_exporter_records_total") {
			t.Fatal("pipeline self-metrics missing")
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
