package dashboards

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/accesslog-exporter/accesslog-exporter/internal/testenv"
)

// notExposedYet lists metric names the dashboards and rules use that the
// exporter does not expose on a healthy demo run, with the reason. Keep it
// short: every entry is a name no test has seen.
var notExposedYet = map[string]string{
	// Vectors whose children are created on the first event: a healthy run
	// has no rejection and no drop.
	"accesslog_exporter_loki_rejected_total": "created on the first line Loki rejects",
	"accesslog_exporter_loki_dropped_total":  "created on the first dropped line (loki.drop is opt-in)",
}

// emptyOnHealthyRun lists panel queries that may legitimately return nothing
// from a healthy demo run (no retries, rejections or drops), by panel title
// and refId.
var emptyOnHealthyRun = map[string]string{
	"Retries, rejections, drops [B]": "the test's Loki rejects nothing",
	"Retries, rejections, drops [C]": "nothing is dropped",
}

// prometheusBuiltins are series Prometheus makes itself.
var prometheusBuiltins = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// TestAgainstExporter runs the exporter binary on its embedded Kafka and
// generated traffic, checks every metric name of the dashboards and rules
// against its exposition, then has Debian's Prometheus scrape it (once with
// native histograms, once without) and checks that every panel query and
// every recording rule returns data.
func TestAgainstExporter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the exporter and Prometheus")
	}
	ds := loadDashboards(t)
	qs := promQueries(t, ds)
	ex := startExporter(t)

	t.Run("metric names exist", func(t *testing.T) {
		recorded := recordedNames(t)
		used := map[string][]string{}
		for _, q := range qs {
			e, err := parse(substitute(q.expr, "5m", "1h"))
			if err != nil {
				continue // TestQueriesParse reports it
			}
			for _, n := range metricNames(e) {
				used[n] = append(used[n], q.name)
			}
		}
		for _, n := range ruleMetricNames(t) {
			used[n] = append(used[n], "prometheus/rules")
		}
		var want []string
		for n := range used {
			if !recorded[n] && !prometheusBuiltins[n] && notExposedYet[n] == "" {
				want = append(want, n)
			}
		}
		// Consumer-group series need a commit and a health poll after it.
		exposed := waitExposition(t, ex, want, 30*time.Second)
		for _, n := range sortedKeys(keys(used)) {
			switch {
			case exposed[n], recorded[n], prometheusBuiltins[n]:
			case notExposedYet[n] != "":
				t.Logf("skip %s: %s", n, notExposedYet[n])
			default:
				t.Errorf("%s is not exposed by the exporter (used by %s)", n, strings.Join(used[n], "; "))
			}
		}
		for n := range notExposedYet {
			if exposed[n] {
				t.Errorf("%s is exposed now: remove it from notExposedYet", n)
			}
		}
	})

	t.Run("live Prometheus", func(t *testing.T) {
		testenv.LookPath(t, "prometheus", "prometheus-tools")
		native := startPrometheus(t, ex.addr, true)
		classic := startPrometheus(t, ex.addr, false)
		var checks []query
		for _, q := range qs {
			checks = append(checks, query{name: q.name, expr: substitute(q.expr, "10s", "30s")})
		}
		for _, n := range sortedKeys(recordedNames(t)) {
			checks = append(checks, query{name: "recording rule " + n, expr: n})
		}
		// Each server stores one form of the request histograms only, so
		// the two runs exercise both halves of every `native or classic`.
		forms := map[*promServer][2]string{
			native:  {"accesslog_http_request_duration_seconds", "accesslog_http_request_duration_seconds_bucket"},
			classic: {"accesslog_http_request_duration_seconds_bucket", "accesslog_http_request_duration_seconds"},
		}
		for _, p := range []*promServer{native, classic} {
			t.Run(p.name, func(t *testing.T) {
				t.Parallel()
				pollQueries(t, p, checks, 60*time.Second)
				has, hasNot := forms[p][0], forms[p][1]
				if n, err := p.count(has); err != nil || n == 0 {
					t.Errorf("%s Prometheus has no %s (%v)", p.name, has, err)
				}
				if n, err := p.count(hasNot); err != nil || n != 0 {
					t.Errorf("%s Prometheus stores %s too (%d series, %v): the test would not tell the forms apart", p.name, hasNot, n, err)
				}
				p.checkRules(t)
			})
		}
	})
}

func keys[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// allowedEmpty says why a query may return nothing on a healthy run, or "".
func allowedEmpty(q query) string {
	return emptyOnHealthyRun[q.name[strings.Index(q.name, ": ")+2:]]
}

// pollQueries runs every query until it returns data, for at most within.
func pollQueries(t *testing.T, p *promServer, checks []query, within time.Duration) {
	deadline := time.Now().Add(within)
	pending := checks
	for {
		var still []query
		waiting := 0
		for _, q := range pending {
			n, err := p.count(q.expr)
			if err != nil {
				t.Errorf("%s: %v", q.name, err)
				continue
			}
			if n == 0 {
				still = append(still, q)
				if allowedEmpty(q) == "" {
					waiting++
				}
			}
		}
		pending = still
		if waiting == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, q := range pending {
		if why := allowedEmpty(q); why != "" {
			t.Logf("skip %s: %s", q.name, why)
			continue
		}
		t.Errorf("%s: no data from %s Prometheus within %v\n%s", q.name, p.name, within, q.expr)
	}
	t.Logf("%d queries checked against %s Prometheus", len(checks), p.name)
}

// ruleMetricNames lists the metric names the rules read.
func ruleMetricNames(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("../prometheus/rules/*.yml")
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ruleExprs(t, b) {
			pe, err := parse(e)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			names = append(names, metricNames(pe)...)
		}
	}
	return names
}

// exporter is the running exporter binary.
type exporter struct {
	addr string
	log  *syncBuffer
}

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

var listeningRE = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

// startExporter builds and starts the exporter on its embedded Kafka, with
// the route label on, a fast health poll and a Loki that acknowledges
// everything, so that every family the dashboards use has series.
func startExporter(t *testing.T) *exporter {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "accesslog-exporter")
	build := exec.Command("go", "build", "-o", bin, "../cmd/accesslog-exporter")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	loki := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(loki.Close)
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`metrics:
  labels: [vhost, method, status, status_class, route]
health:
  interval: 2s
  timeout: 1s
  expected_brokers: 3
loki:
  url: %s
`, loki.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--kafka.embedded", "--kafka.embedded.rate=300", "--web.listen-address=127.0.0.1:0")
	log := &syncBuffer{}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("exporter log (end):\n%s", tail(log.String(), 40))
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		return &exporter{addr: a, log: log}
	case <-time.After(20 * time.Second):
		t.Fatalf("exporter did not log its address:\n%s", log.String())
	}
	return nil
}

// waitExposition scrapes the exporter until every wanted name is there or
// time is up, and returns every sample name it exposes: family names plus
// _bucket, _sum and _count for histograms and summaries.
func waitExposition(t *testing.T, ex *exporter, want []string, within time.Duration) map[string]bool {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		names, err := scrapeNames(ex.addr)
		missing := 0
		for _, n := range want {
			if !names[n] {
				missing++
			}
		}
		if err == nil && missing == 0 {
			return names
		}
		if time.Now().After(deadline) {
			t.Logf("exposition incomplete after %v (err %v); checking what is there", within, err)
			return names
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func scrapeNames(addr string) (map[string]bool, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for n, f := range fams {
		if len(f.Metric) == 0 {
			continue
		}
		names[n] = true
		switch f.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case "SUMMARY":
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	return names, nil
}

type promServer struct {
	name string
	url  string
}

// startPrometheus runs Debian's Prometheus on a free loopback port with
// temporary storage, scraping the exporter every second and evaluating the
// rules of prometheus/rules every second.
func startPrometheus(t *testing.T, target string, native bool) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs("../prometheus/rules")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: accesslog-exporter
    static_configs: [{targets: [%q]}]
`, rules+"/*.yml", target)), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	args := []string{"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:" + port, "--log.level=warn"}
	name := "classic"
	if native {
		args = append(args, "--enable-feature=native-histograms")
		name = "native"
	}
	log := &syncBuffer{}
	cmd := exec.Command("prometheus", args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s prometheus log (end):\n%s", name, tail(log.String(), 40))
		}
	})
	p := &promServer{name: name, url: "http://127.0.0.1:" + port}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s prometheus not ready: %v\n%s", name, err, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// count runs an instant query and returns the number of series it returns.
func (p *promServer) count(expr string) (int, error) {
	// A query of this small Prometheus takes milliseconds, but on a machine
	// shared by many test runs (load average 30 on 2 cores seen) 5 s was
	// exceeded: the bound only guards against a hung server.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query failed: %s", r.Error)
	}
	return len(r.Data.Result), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkRules fails for every rule Prometheus could not evaluate (a
// many-to-many match, a type error the parser cannot see).
func (p *promServer) checkRules(t *testing.T) {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			n++
			if rule.Health != "ok" {
				t.Errorf("%s Prometheus: rule %s (group %s): health %s %s", p.name, rule.Name, g.Name, rule.Health, rule.LastError)
			}
		}
	}
	if n == 0 {
		t.Errorf("%s Prometheus loaded no rules", p.name)
	}
	t.Logf("%d rules evaluate without error on %s Prometheus", n, p.name)
}
