//go:build e2e

// Package e2e holds the scenarios run against the local stack
// (deploy/local/stack-up.sh): real nginx, Filebeat, a Kafka-protocol cluster,
// the exporter, VictoriaLogs (the log store, fed through its Loki push API),
// Prometheus and Alertmanager, all on 127.0.0.1. Every
// scenario uses its own vhosts (with a run id), so counts are absolute and
// scenarios do not see each other's lines; every wait is a poll with a
// deadline. Each leaves a ledger in deploy/local/.run/ledgers/ and prints it.
//
//	make e2e                              # stack-up, scenarios, stack-down
//	go test -tags e2e ./deploy/local/...  # against a stack already up
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	nginxURL      = "http://127.0.0.1:28080"
	upstreamCtl   = "http://127.0.0.1:28089"
	kafkaCtl      = "http://127.0.0.1:29099"
	exporterURL   = "http://127.0.0.1:29717"
	exporter2URL  = "http://127.0.0.1:29718"
	logStoreURL   = "http://127.0.0.1:29100"
	promURL       = "http://127.0.0.1:29190"
	webhookURL    = "http://127.0.0.1:29195"
	filebeatStats = "http://127.0.0.1:29196/stats"
)

var (
	here   string // deploy/local
	runDir string // deploy/local/.run
	runID  = strconv.FormatInt(time.Now().Unix()%1000000, 36)
	client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
)

func TestMain(m *testing.M) {
	wd, _ := os.Getwd()
	here = filepath.Dir(wd)
	runDir = os.Getenv("ACCESSLOG_LOCAL_RUN")
	if runDir == "" {
		runDir = filepath.Join(here, ".run")
	}
	// Idempotent: starts what is not running (everything, the first time).
	if out, err := stackUp(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: stack-up failed: %v\n%s", err, out)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func stackUp() ([]byte, error) {
	cmd := exec.Command(filepath.Join(here, "stack-up.sh"))
	cmd.Env = append(os.Environ(), "ACCESSLOG_LOCAL_RUN="+runDir)
	return cmd.CombinedOutput()
}

func stackDown(names ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(here, "stack-down.sh"), names...)
	cmd.Env = append(os.Environ(), "ACCESSLOG_LOCAL_RUN="+runDir)
	return cmd.CombinedOutput()
}

// eventually polls cond every interval until it reports done, or fails the
// test at the deadline with cond's last account of where things stand.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var last string
	for {
		ok, status := cond()
		if ok {
			t.Logf("%s: after %s (%s)", what, time.Since(start).Round(100*time.Millisecond), status)
			return time.Since(start)
		}
		last = status
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// ledger is a scenario's record: what was produced and what each hop saw.
type ledger struct {
	name  string
	mu    sync.Mutex
	lines []string
}

func newLedger(t *testing.T, name string) *ledger {
	l := &ledger{name: name}
	l.add("scenario", name)
	l.add("run id", runID)
	l.add("started", time.Now().UTC().Format(time.RFC3339))
	since := time.Now()
	t.Cleanup(func() {
		l.add("alerts seen at the webhook", alertsSince(since))
		status := "PASS"
		if t.Failed() {
			status = "FAIL"
		} else if t.Skipped() {
			status = "SKIP"
		}
		l.add("result", status)
		text := strings.Join(l.lines, "\n") + "\n"
		dir := filepath.Join(runDir, "ledgers")
		_ = os.MkdirAll(dir, 0o755)
		path := filepath.Join(dir, fmt.Sprintf("%s-%s.txt", name, runID))
		_ = os.WriteFile(path, []byte(text), 0o644)
		fmt.Printf("\n--- ledger %s (%s)\n%s", name, path, text)
	})
	return l
}

func (l *ledger) add(key string, v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%-34s %v", key+":", v))
}

// --- traffic ---------------------------------------------------------------

// request is one request of a mix: a path for a Host.
type request struct {
	host, path string
}

// classOf is "2xx" for 200 etc.
func classOf(code int) string { return fmt.Sprintf("%dxx", code/100) }

// tally counts answers by status class, as the client saw them.
type tally struct {
	mu      sync.Mutex
	byClass map[string]int
	total   int
	errors  int
}

func (t *tally) add(code int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byClass == nil {
		t.byClass = map[string]int{}
	}
	t.byClass[classOf(code)]++
	t.total++
}

func (t *tally) snapshot() (map[string]int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := map[string]int{}
	for k, v := range t.byClass {
		m[k] = v
	}
	return m, t.total
}

func do(r request) (int, error) {
	req, err := http.NewRequest(http.MethodGet, nginxURL+r.path, nil)
	if err != nil {
		return 0, err
	}
	req.Host = r.host
	req.Header.Set("User-Agent", "accesslog-e2e/"+runID)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// drive sends every request of reqs with a few workers and counts the answers.
// A request nginx did not answer is an error of the test, not of the system.
func drive(t *testing.T, reqs []request, tl *tally) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(reqs)) {
					return
				}
				code, err := do(reqs[i])
				if err != nil {
					failed.Add(1)
					continue
				}
				tl.add(code)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d requests got no answer from nginx", n)
	}
}

// background sends requests from mix round-robin at about rate per second
// until stop is called; stop returns how many nginx answered.
func background(t *testing.T, mix []request, rate int, tl *tally) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		var inflight sync.WaitGroup
		defer inflight.Wait()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			inflight.Add(1)
			go func(r request) {
				defer inflight.Done()
				if code, err := do(r); err == nil {
					tl.add(code)
				} else {
					tl.mu.Lock()
					tl.errors++
					tl.mu.Unlock()
				}
			}(mix[i%len(mix)])
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func staticMix(host string) []request {
	return []request{
		{host, "/"}, {host, "/about.html"}, {host, "/assets/app.js"}, {host, "/"},
		{host, "/missing-" + runID}, // 404
	}
}

func apiMix(host string) []request {
	return []request{
		{host, "/api/v1/users/1"}, {host, "/api/v1/orders?page=2"}, {host, "/api/v1/users/2"},
		{host, "/api/v1/fail?status=503"}, // 503 from both servers: a retry, then 503
		{host, "/api/v1/items/9"},
	}
}

func repeat(mix []request, n int) []request {
	out := make([]request, n)
	for i := range out {
		out[i] = mix[i%len(mix)]
	}
	return out
}

// --- nginx's access.log ----------------------------------------------------

// accessLogCount counts the lines of nginx's access.log whose $host is one of hosts.
func accessLogCount(t *testing.T, hosts ...string) int {
	t.Helper()
	f, err := os.Open(filepath.Join(runDir, "nginx", "logs", "access.log"))
	if err != nil {
		t.Fatalf("access.log: %v", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, h := range hosts {
			if strings.Contains(line, `" `+h+` `) {
				n++
				break
			}
		}
	}
	return n
}

// --- HTTP helpers ----------------------------------------------------------

func getJSON(u string, v any) error {
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, v)
}

func post(t *testing.T, u string, form url.Values) {
	t.Helper()
	resp, err := client.PostForm(u, form)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", u, resp.Status, b)
	}
}

func setUpstream(t *testing.T, kv ...string) {
	t.Helper()
	f := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	post(t, upstreamCtl+"/config", f)
}

// metricsText is an exporter's /metrics as text ("" when it does not answer).
func metricsText(base string) string {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// exporterHas says whether the exporter exposes a metric family with this
// prefix: how the scenarios tell whether a part of the pipeline is wired.
func exporterHas(prefix string) bool {
	for _, line := range strings.Split(metricsText(exporterURL), "\n") {
		if strings.HasPrefix(line, prefix) || strings.HasPrefix(line, "# TYPE "+prefix) {
			return true
		}
	}
	return false
}

func pidOf(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, "pids", name))
	if err != nil {
		t.Fatalf("pid of %s: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid of %s: %v", name, err)
	}
	return pid
}

// --- Prometheus ------------------------------------------------------------

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

func promQuery(q string) ([]promSample, error) {
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := getJSON(promURL+"/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	return r.Data.Result, nil
}

func sampleValue(v [2]any) float64 {
	s, _ := v[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// promScalar is the single value of q, 0 when q returns nothing.
func promScalar(q string) (float64, error) {
	res, err := promQuery(q)
	if err != nil || len(res) == 0 {
		return 0, err
	}
	return sampleValue(res[0].Value), nil
}

// promBy is q's values keyed by the value of label.
func promBy(q, label string) (map[string]float64, error) {
	res, err := promQuery(q)
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, s := range res {
		m[s.Metric[label]] += sampleValue(s.Value)
	}
	return m, nil
}

// countedAcross is what the counters selected by sel counted over the last
// window when the exporter was restarted at cut: per series, the last value
// of the old process (samples before cut) plus the last value of the new one
// (samples after cut). Our vhosts are new, so each process's series start
// at 0. Unlike increase(), nothing is extrapolated, and a restart is handled
// even when the new process has already counted past the old value by its
// first scrape (then no drop is visible to resets()).
func countedAcross(sel string, window time.Duration, cut time.Time) (before, after float64, err error) {
	res, err := promQuery(fmt.Sprintf("%s[%ds]", sel, int(window.Seconds())))
	if err != nil {
		return 0, 0, err
	}
	c := float64(cut.UnixMilli()) / 1000
	for _, s := range res {
		var b, a float64
		for _, v := range s.Values {
			ts, _ := v[0].(float64)
			if ts < c {
				b = sampleValue(v)
			} else {
				a = sampleValue(v)
			}
		}
		before += b
		after += a
	}
	return before, after, nil
}

// alertState is the state of alertname with these labels in Prometheus's
// ALERTS series: "", "pending" or "firing".
func alertState(alertname string, match map[string]string) string {
	var sel []string
	sel = append(sel, fmt.Sprintf(`alertname=%q`, alertname))
	for k, v := range match {
		sel = append(sel, fmt.Sprintf(`%s=%q`, k, v))
	}
	res, err := promQuery("ALERTS{" + strings.Join(sel, ",") + "}")
	if err != nil {
		return ""
	}
	state := ""
	for _, s := range res {
		if s.Metric["alertstate"] == "firing" {
			return "firing"
		}
		state = s.Metric["alertstate"]
	}
	return state
}

// amAlertState is the state of alertname in Alertmanager ("active",
// "suppressed", or "" when absent) and what inhibits it.
func amAlertState(alertname string, match map[string]string) (string, []string) {
	var alerts []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State       string   `json:"state"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := getJSON("http://127.0.0.1:29193/api/v2/alerts", &alerts); err != nil {
		return "", nil
	}
	for _, a := range alerts {
		ok := a.Labels["alertname"] == alertname
		for k, v := range match {
			ok = ok && a.Labels[k] == v
		}
		if ok {
			return a.Status.State, a.Status.InhibitedBy
		}
	}
	return "", nil
}

// --- the webhook recorder --------------------------------------------------

type received struct {
	ReceivedAt  time.Time         `json:"received_at"`
	Receiver    string            `json:"receiver"`
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
}

// webhookAlerts are the notifications of alertname received since 'since'
// whose labels include match.
func webhookAlerts(alertname string, match map[string]string, since time.Time) []received {
	var all []received
	if err := getJSON(webhookURL+"/alerts?alertname="+url.QueryEscape(alertname), &all); err != nil {
		return nil
	}
	var out []received
	for _, a := range all {
		if a.ReceivedAt.Before(since) {
			continue
		}
		ok := true
		for k, v := range match {
			if a.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, a)
		}
	}
	return out
}

// alertsSince summarises what the webhook received since t: each alert name
// with the statuses it was sent in, in order of first arrival.
func alertsSince(t time.Time) string {
	var all []received
	if err := getJSON(webhookURL+"/alerts", &all); err != nil {
		return "unknown: " + err.Error()
	}
	var names []string
	states := map[string][]string{}
	for _, a := range all {
		if a.ReceivedAt.Before(t) {
			continue
		}
		n := a.Labels["alertname"]
		if _, ok := states[n]; !ok {
			names = append(names, n)
		}
		if st := states[n]; len(st) == 0 || st[len(st)-1] != a.Status {
			states[n] = append(st, a.Status)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	var parts []string
	for _, n := range names {
		parts = append(parts, n+" ("+strings.Join(states[n], "->")+")")
	}
	return strings.Join(parts, ", ")
}

func hasStatus(rs []received, status string) (received, bool) {
	for _, r := range rs {
		if r.Status == status {
			return r, true
		}
	}
	return received{}, false
}

// --- the log store (VictoriaLogs) -------------------------------------------

// storeCount is what the log store holds for a LogsQL filter: every entry,
// the distinct lines (nginx's $request_id ends each line, so a line
// delivered twice counts once), and the bytes of every entry. VictoriaLogs
// keeps each entry it is sent (Loki folds identical ones), so total minus
// distinct is what was delivered twice. It counts on the server: a
// scenario's lines are never read back one by one.
func storeCount(filter string) (total, distinct int, size int64, err error) {
	q := filter + " | stats count() total, count_uniq(_msg) distinct, sum_len(_msg) bytes"
	resp, err := client.PostForm(logStoreURL+"/select/logsql/query", url.Values{"query": {q}})
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("LogsQL %s: %s: %s", q, resp.Status, bytes.TrimSpace(b))
	}
	var r struct{ Total, Distinct, Bytes string }
	if len(bytes.TrimSpace(b)) == 0 { // no entry matched: no row
		return 0, 0, 0, nil
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, 0, 0, fmt.Errorf("LogsQL %s: %v: %s", q, err, b)
	}
	total, _ = strconv.Atoi(r.Total)
	distinct, _ = strconv.Atoi(r.Distinct)
	n, _ := strconv.ParseInt(r.Bytes, 10, 64)
	return total, distinct, n, nil
}

// storeLines is storeCount without the bytes.
func storeLines(filter string) (total, distinct int, err error) {
	total, distinct, _, err = storeCount(filter)
	return total, distinct, err
}

// vhostFilter selects the exporter's lines that name one of these vhosts
// (LogsQL phrase filters on the line, so a line the exporter failed to
// label is still found).
func vhostFilter(hosts ...string) string {
	var ps []string
	for _, h := range hosts {
		ps = append(ps, strconv.Quote(h))
	}
	return `{job="accesslog"} (` + strings.Join(ps, " OR ") + ")"
}

// committedEverywhere waits until group has committed on every partition of
// nginxlog: the health poller reports lag -1 for a partition without a
// commit and leaves it out of kafka_consumergroup_lag_sum, so lag that piles
// up on a never-committed partition is invisible to the lag alerts.
func committedEverywhere(t *testing.T, group string) {
	t.Helper()
	eventually(t, 60*time.Second, group+" committed on every partition", func() (bool, string) {
		v, err := promScalar(fmt.Sprintf(`count(max by (partition) (kafka_consumergroup_current_offset{consumergroup=%q,topic="nginxlog"}) >= 0)`, group))
		return err == nil && v == 6, fmt.Sprintf("%v of 6 partitions committed", v)
	})
}

// lagOf is the records group has not committed on any topic (0 when unknown).
func lagOf(group string) float64 {
	v, _ := promScalar(fmt.Sprintf(`sum(consumergroup_topic:kafka_consumergroup_lag:sum{consumergroup=%q})`, group))
	return v
}

// metricsCurrent waits until Prometheus has counted, for host, every request
// nginx had answered when it was called, and the metrics group is less than
// 1000 records behind: the metrics path is current while the log path is
// not. It returns the count, the metrics group's lag and what was answered.
func metricsCurrent(t *testing.T, host string, tl *tally) (counted, lag float64, answered int) {
	t.Helper()
	_, answered = tl.snapshot()
	sel := fmt.Sprintf(`sum(accesslog_http_requests_total{vhost=%q})`, host)
	eventually(t, 20*time.Second, "the request counters keep moving during the outage", func() (bool, string) {
		counted, _ = promScalar(sel)
		lag = lagOf("accesslog-exporter")
		return counted >= float64(answered) && lag < 1000, fmt.Sprintf("counted %v of %d answered, metrics group lag %v", counted, answered, lag)
	})
	return counted, lag, answered
}

// checkDuplicates records the lines the log store holds twice and fails when
// they are more than at-least-once delivery allows: what was pushed and not
// acknowledged when the store went away (loki.max_inflight_bytes), plus one
// batch for every push that timed out since the scenario began (the store
// may have kept it, and it is sent again: on a loaded machine a store that
// catches up answers late). avg is the mean bytes of a line.
func checkDuplicates(t *testing.T, l *ledger, lines int, avg float64, timeouts int) {
	t.Helper()
	bound := maxInflight + timeouts*batchMaxBytes
	l.add("duplicates (lines, ~bytes)", fmt.Sprintf("%d, %.0f (bound %d: %d in flight + %d timed-out pushes of at most %d)",
		lines, float64(lines)*avg, bound, maxInflight, timeouts, batchMaxBytes))
	if float64(lines)*avg > float64(bound) {
		t.Errorf("%d duplicate lines (~%.0f bytes): more than loki.max_inflight_bytes plus the timed-out pushes can have sent twice (%d)", lines, float64(lines)*avg, bound)
	}
}

// pushTimeouts is how many pushes of the exporter on 29717 timed out so far
// (accesslog_exporter_loki_retries_total{reason="timeout"}), read from the
// exporter itself, so that nothing a scrape has not seen yet is missed.
func pushTimeouts() int {
	n := 0.0
	for _, line := range strings.Split(metricsText(exporterURL), "\n") {
		if strings.HasPrefix(line, "accesslog_exporter_loki_retries_total{") && strings.Contains(line, `reason="timeout"`) {
			if f := strings.Fields(line); len(f) >= 2 {
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				n += v
			}
		}
	}
	return int(n)
}

// requireLoki fails unless the running exporter forwards to the log store (it then
// exposes accesslog_exporter_loki_* metrics).
func requireLoki(t *testing.T) {
	t.Helper()
	if !exporterHas("accesslog_exporter_loki_") {
		t.Fatal("the exporter does not forward to the log store: no accesslog_exporter_loki_* metrics on /metrics (loki.url in deploy/local/exporter.yml?)")
	}
}

// requireHealth fails unless the running exporter runs the Kafka health
// poller, which the Kafka alerts are computed from.
func requireHealth(t *testing.T) {
	t.Helper()
	if !exporterHas("kafka_topic_partition_under_replicated_partition") {
		t.Fatal("the exporter runs no Kafka health poller: no kafka_topic_partition_under_replicated_partition on /metrics (health.enabled in deploy/local/exporter.yml?)")
	}
}

func sortedKeys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func ready(base string) bool {
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
}

func writePid(t *testing.T, name string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(runDir, "pids", name), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// setTargets rewrites the exporter job's file_sd targets; Prometheus picks
// the change up within a second.
func setTargets(t *testing.T, addrs ...string) {
	t.Helper()
	b, _ := json.Marshal([]map[string]any{{"targets": addrs}})
	path := filepath.Join(runDir, "prometheus", "exporters.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
