// Package lokitest runs a real Grafana Loki (built from its Go module by
// scripts/install-loki.sh) and VictoriaLogs on 127.0.0.1 for tests, and a
// fault-injecting proxy to put in front of them. Tests only.
package lokitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// repoRoot finds the module root from the working directory (go test runs
// in the package's directory).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("lokitest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Install returns the path of a binary: $env when set, else what script
// (under scripts/) prints last, building it on first use.
func Install(env, script string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "scripts", script))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/%s: %v\n%s", script, err, tail(stderr.String(), 2000))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a started store.
type Process struct {
	URL string // http://127.0.0.1:PORT
	cmd *exec.Cmd
	log *os.File
	Dir string
}

// Stop kills the process by its PID and waits for it.
func (p *Process) Stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.log.Close()
}

// LogTail is the end of the process's output, for failure messages.
func (p *Process) LogTail() string {
	b, _ := os.ReadFile(p.log.Name())
	return tail(string(b), 4000)
}

const lokiConfig = `auth_enabled: false
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %d
  log_level: warn
  http_server_read_timeout: 60s
  http_server_write_timeout: 60s
  grpc_server_max_recv_msg_size: 67108864
common:
  instance_addr: 127.0.0.1
  path_prefix: %[3]s
  storage:
    filesystem:
      chunks_directory: %[3]s/chunks
      rules_directory: %[3]s/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
ingester:
  lifecycler:
    min_ready_duration: 0s
    final_sleep: 0s
schema_config:
  configs:
    - from: 2020-10-24
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
limits_config:
  reject_old_samples: false
  max_line_size: %[4]d
  max_entries_limit_per_query: 1000000
  allow_structured_metadata: true
  ingestion_rate_mb: 1024
  ingestion_burst_size_mb: 1024
  per_stream_rate_limit: 1GB
  per_stream_rate_limit_burst: 2GB
  discover_service_name: []
  discover_log_levels: false
  max_query_series: 100000
query_range:
  cache_results: false
analytics:
  reporting_enabled: false
`

// MaxLineSize is the line limit of the Loki that StartLoki runs: tests
// push a longer line to see it rejected.
const MaxLineSize = 16384

// StartLoki runs Loki with its data under dir and waits until /ready.
func StartLoki(bin, dir string) (*Process, error) {
	httpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	grpcPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "loki.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, lokiConfig, httpPort, grpcPort, dir, MaxLineSize), 0o600); err != nil {
		return nil, err
	}
	p, err := start(dir, "loki.log", bin, "-config.file="+cfg)
	if err != nil {
		return nil, err
	}
	p.URL = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	if err := p.waitReady("/ready", 3*time.Minute); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// StartVictoriaLogs runs VictoriaLogs with its data under dir.
func StartVictoriaLogs(bin, dir string) (*Process, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p, err := start(dir, "victoria-logs.log", bin, "-httpListenAddr=127.0.0.1:"+strconv.Itoa(port),
		"-storageDataPath="+filepath.Join(dir, "vl-data"), "-retentionPeriod=100y")
	if err != nil {
		return nil, err
	}
	p.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := p.waitReady("/health", time.Minute); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func start(dir, logName, bin string, args ...string) (*Process, error) {
	lf, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group: a test binary killed by a timeout does not
	// leave it behind attached to our terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	return &Process{cmd: cmd, log: lf, Dir: dir}, nil
}

func (p *Process) waitReady(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		// Signal 0 fails once the process is gone; a process that exited
		// but is not reaped yet still takes it, so a bad config shows as a
		// timeout with the log tail, which says why.
		if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return fmt.Errorf("%s exited before ready:\n%s", filepath.Base(p.cmd.Path), p.LogTail())
		}
		resp, err := http.Get(p.URL + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s%s after %v:\n%s", filepath.Base(p.cmd.Path), p.URL, path, d, p.LogTail())
}

// Entry is one line as Loki returns it.
type Entry struct {
	Time     time.Time
	Line     string
	Metadata map[string]string
}

// Stream is one label set and its entries, oldest first.
type Stream struct {
	Labels  map[string]string
	Entries []Entry
}

// Query returns every entry matching the LogQL selector between start and
// end (inclusive), by stream. Loki folds entries with equal timestamp and
// line into one, as it does for replicas.
func Query(lokiURL, selector string, start, end time.Time) ([]Stream, error) {
	q := url.Values{}
	q.Set("query", selector)
	q.Set("start", strconv.FormatInt(start.UnixNano(), 10))
	q.Set("end", strconv.FormatInt(end.UnixNano()+1, 10))
	q.Set("limit", "1000000")
	q.Set("direction", "forward")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lokiURL+"/loki/api/v1/query_range?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Stream map[string]string   `json:"stream"`
				Values [][]json.RawMessage `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return nil, fmt.Errorf("query_range %s: %s: %s", selector, resp.Status, tail(b.String(), 500))
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var out []Stream
	for _, r := range body.Data.Result {
		s := Stream{Labels: r.Stream}
		for _, v := range r.Values {
			var ts, line string
			if err := json.Unmarshal(v[0], &ts); err != nil {
				return nil, err
			}
			if err := json.Unmarshal(v[1], &line); err != nil {
				return nil, err
			}
			n, err := strconv.ParseInt(ts, 10, 64)
			if err != nil {
				return nil, err
			}
			e := Entry{Time: time.Unix(0, n), Line: line}
			if len(v) > 2 {
				_ = json.Unmarshal(v[2], &e.Metadata)
			}
			s.Entries = append(s.Entries, e)
		}
		out = append(out, s)
	}
	// Loki splits a stream by structured metadata in answers; merge them
	// back under the stream labels the pusher sent.
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i].Labels) < fmt.Sprint(out[j].Labels) })
	return out, nil
}

// Count is the number of entries per stream, keyed by the label values of
// names joined with "/".
func Count(streams []Stream, names ...string) map[string]int {
	out := map[string]int{}
	for _, s := range streams {
		var k []string
		for _, n := range names {
			k = append(k, s.Labels[n])
		}
		out[strings.Join(k, "/")] += len(s.Entries)
	}
	return out
}

// Total is the number of entries in streams.
func Total(streams []Stream) int {
	n := 0
	for _, s := range streams {
		n += len(s.Entries)
	}
	return n
}
