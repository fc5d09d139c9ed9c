package pipeline

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki/lokitest"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
)

// One real Loki for the package, started by the first test that needs it
// (about 30 s) and stopped by TestMain.
var realLoki struct {
	once sync.Once
	proc *lokitest.Process
	skip string
	err  error
	dir  string
}

func TestMain(m *testing.M) {
	code := m.Run()
	realLoki.proc.Stop()
	if realLoki.dir != "" {
		os.RemoveAll(realLoki.dir)
	}
	os.Exit(code)
}

// needLoki returns the base URL of the package's Loki. The test is skipped
// only when the binary cannot be built; a Loki that does not start fails it.
func needLoki(t testing.TB) string {
	t.Helper()
	realLoki.once.Do(func() {
		bin, err := lokitest.Install("ACCESSLOG_LOKI_BIN", "install-loki.sh")
		if err != nil {
			realLoki.skip = fmt.Sprintf("Loki binary cannot be built (scripts/install-loki.sh; or set ACCESSLOG_LOKI_BIN): %v", err)
			return
		}
		if realLoki.dir, err = os.MkdirTemp("", "accesslog-loki-"); err != nil {
			realLoki.err = err
			return
		}
		realLoki.proc, realLoki.err = lokitest.StartLoki(bin, realLoki.dir)
	})
	if realLoki.skip != "" {
		t.Skip(realLoki.skip)
	}
	if realLoki.err != nil {
		t.Fatalf("starting Loki: %v", realLoki.err)
	}
	return realLoki.proc.URL
}

// lokiRun is one exporter run inside the test process.
type lokiRun struct {
	cluster *kfake.Cluster
	group   string
	cancel  context.CancelFunc
	done    chan error
	metrics string
}

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "nginxlog"), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produceLines writes lines round-robin over the partitions in small
// batches (so that polls are small and the in-flight bound can bite).
func produceLines(t *testing.T, c *kfake.Cluster, lines [][]byte) {
	t.Helper()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("nginxlog"),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerBatchMaxBytes(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	recs := make([]*kgo.Record, len(lines))
	for i, l := range lines {
		recs[i] = &kgo.Record{Value: l}
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func lokiConfig(c *kfake.Cluster, url, job string) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Kafka.CommitInterval = 100 * time.Millisecond
	cfg.Kafka.Group = "g-" + job
	cfg.Loki.URL = url
	cfg.Loki.Labels.Job = job
	cfg.Loki.Batch.MaxWait = 100 * time.Millisecond
	cfg.Loki.Batch.MaxBytes = 256 << 10
	cfg.Loki.Retry.MinBackoff = 50 * time.Millisecond
	cfg.Loki.Retry.MaxBackoff = 500 * time.Millisecond
	cfg.Loki.ShutdownTimeout = 10 * time.Second
	return cfg
}

func startRun(t *testing.T, c *kfake.Cluster, cfg config.Config) *lokiRun {
	t.Helper()
	started := make(chan *server.Server, 1)
	ctx, cancel := context.WithCancel(context.Background())
	r := &lokiRun{cluster: c, group: cfg.LokiGroup(), cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- Run(ctx, &cfg, Options{
			Web:       &web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}, WebSystemdSocket: new(bool), WebConfigFile: new(string)},
			KafkaOpts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond), kgo.FetchMaxWait(200 * time.Millisecond)},
			Started:   func(s *server.Server) { started <- s },
		})
	}()
	select {
	case s := <-started:
		r.metrics = "http://" + s.Addr().String() + "/metrics"
	case err := <-r.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *lokiRun) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return within 30s of cancel")
	}
}

// committedTotal sums the group's committed offsets, and the end offsets.
func committedTotal(t testing.TB, c *kfake.Cluster, group string) (commit, end int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lag, err := kadm.NewClient(cl).Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	lag.Each(func(l kadm.DescribedGroupLag) {
		for _, ps := range l.Lag {
			for _, pl := range ps {
				if pl.Commit.At > 0 {
					commit += pl.Commit.At
				}
				end += pl.End.Offset
			}
		}
	})
	return commit, end
}

func waitCommitted(t *testing.T, r *lokiRun, n int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		commit, end := committedTotal(t, r.cluster, r.group)
		if commit == n && end == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %d of %d offsets (end %d) after %v", commit, n, end, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var timeLocal = regexp.MustCompile(`\[(\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\]`)

// lineTime is the $time_local of a line, if it has one.
func lineTime(line string) (time.Time, bool) {
	m := timeLocal.FindStringSubmatch(line)
	if m == nil {
		return time.Time{}, false
	}
	ts, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[1])
	return ts, err == nil
}

// genMixed makes n raw and n Filebeat-enveloped lines stamped from start,
// and the count per stream Loki should hold, keyed "host/parse_status".
func genMixed(t *testing.T, n int, start time.Time) ([][]byte, map[string]int) {
	t.Helper()
	want := map[string]int{}
	var lines [][]byte
	for i, env := range []bool{false, true} {
		g, err := loggen.New(loggen.Seed(int64(100+i)), loggen.MalformedRatio(0.01), loggen.Envelope(env),
			loggen.Hosts("web-1", "web-2"), loggen.SimulatedClock(start, 500))
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			lines = append(lines, g.Next(nil))
			last := g.Last()
			host := ""
			if env {
				host = last.Host
			}
			status := "parsed"
			if last.Kind.Malformed() {
				status = "unparsed"
			}
			want[host+"/"+status]++
		}
	}
	return lines, want
}

func TestLokiReceivesEveryLineWithLabelsAndTimestamps(t *testing.T) {
	url := needLoki(t)
	c := newCluster(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	lines, want := genMixed(t, 5000, start)
	produceLines(t, c, lines)

	job := "e2e-every-line"
	r := startRun(t, c, lokiConfig(c, url, job))
	// The contract: an offset is committed only once Loki has acknowledged
	// every line before it. So once all are committed, all are queryable.
	waitCommitted(t, r, int64(len(lines)), time.Minute)
	streams, err := lokitest.Query(url, `{job="`+job+`"}`, start.Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := lokitest.Count(streams, "host", "parse_status")
	if total := lokitest.Total(streams); total != len(lines) {
		t.Errorf("Loki holds %d lines, want exactly %d", total, len(lines))
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("stream host/parse_status=%s: %d lines, want %d", k, got[k], n)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected stream %s", k)
		}
	}
	checked := 0
	for _, s := range streams {
		if s.Labels["job"] != job {
			t.Errorf("stream without job=%s: %v", job, s.Labels)
		}
		for _, e := range s.Entries {
			if s.Labels["parse_status"] != "parsed" {
				continue
			}
			ts, ok := lineTime(e.Line)
			if !ok {
				continue
			}
			// The line's own time, plus the offset tie-break below 1 ms.
			if d := e.Time.Sub(ts); d < 0 || d >= time.Millisecond {
				t.Fatalf("entry at %v for a line logged at %v: %s", e.Time, ts, e.Line)
			}
			checked++
		}
	}
	if checked < len(lines)/2 {
		t.Errorf("only %d timestamps checked", checked)
	}
	s := parse(t, get(t, r.metrics))
	if v := s.sum("accesslog_exporter_loki_entries_sent_total", nil); v != float64(len(lines)) {
		t.Errorf("entries_sent_total = %v, want %d (no retries, so no re-sends)", v, len(lines))
	}
	r.stop(t)
}

// genRaw makes n parseable raw lines stamped from start.
func genRaw(t *testing.T, n int, seed int64, start time.Time) [][]byte {
	t.Helper()
	g, err := loggen.New(loggen.Seed(seed), loggen.SimulatedClock(start, 1000))
	if err != nil {
		t.Fatal(err)
	}
	lines := make([][]byte, n)
	for i := range lines {
		lines[i] = g.Next(nil)
	}
	return lines
}

func TestLokiOutageHoldsCommitsPausesAndLosesNothing(t *testing.T) {
	url := needLoki(t)
	proxy, err := lokitest.NewProxy(url)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxy.Set(lokitest.Status500)

	c := newCluster(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	const n = 20000
	lines := genRaw(t, n, 7, start)
	produceLines(t, c, lines)

	job := "e2e-outage"
	cfg := lokiConfig(c, proxy.URL, job)
	const bound = 512 << 10
	cfg.Loki.MaxInflightBytes = bound
	cfg.Loki.Batch.MaxBytes = 64 << 10
	cfg.Loki.Timeout = time.Second
	cfg.Kafka.FetchMaxBytes = 128 << 10
	cfg.Kafka.FetchMaxPartitionBytes = 64 << 10
	r := startRun(t, c, cfg)

	// Every kind of outage in turn; none may let a commit through, and
	// fetching must stay paused at the bound.
	var maxInflight, maxLokiInflight float64
	paused := false
	for _, phase := range []struct {
		name  string
		fault lokitest.Fault
	}{
		{"500", lokitest.Status500},
		{"429 with Retry-After", lokitest.Status429},
		{"connection refused", lokitest.Refuse},
		{"connection cut before the answer", lokitest.Cut},
		{"answer lost after Loki stored the lines", lokitest.CutAfter},
		{"slower than the push timeout", lokitest.Delay},
	} {
		proxy.SetRetryAfter(1)
		proxy.SetDelay(1500 * time.Millisecond)
		proxy.Set(phase.fault)
		before := proxy.Requests()
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			s := parse(t, get(t, r.metrics))
			maxInflight = max(maxInflight, s.sum("accesslog_exporter_inflight_record_bytes", nil))
			maxLokiInflight = max(maxLokiInflight, s.sum("accesslog_exporter_loki_inflight_bytes", nil))
			paused = paused || s.sum("accesslog_exporter_fetch_paused", nil) == 1
			time.Sleep(100 * time.Millisecond)
		}
		if commit, _ := committedTotal(t, c, r.group); commit != 0 {
			t.Fatalf("during %s: %d offsets committed, but Loki acknowledged nothing", phase.name, commit)
		}
		if proxy.Requests() == before {
			t.Errorf("during %s: no push attempted", phase.name)
		}
	}
	s := parse(t, get(t, r.metrics))
	if !paused {
		t.Error("fetching never paused during the outage")
	}
	if pending := s.sum("accesslog_exporter_partition_pending_offsets", nil); pending == 0 || pending >= n {
		t.Errorf("pending offsets during the outage = %v, want some but not all %d", pending, n)
	}
	// Memory: the bound plus what one poll can bring past it.
	if limit := float64(bound + 3*cfg.Kafka.FetchMaxBytes); maxInflight > limit || maxLokiInflight > limit {
		t.Errorf("in flight reached %v record bytes and %v line bytes; bound %d", maxInflight, maxLokiInflight, bound)
	}
	for _, reason := range []string{"5xx", "429", "network", "timeout"} {
		if s.sum("accesslog_exporter_loki_retries_total", map[string]string{"reason": reason}) == 0 {
			t.Errorf("no retries counted for %s", reason)
		}
	}

	proxy.Set(lokitest.Pass)
	waitCommitted(t, r, n, 2*time.Minute)
	streams, missing := inLoki(t, url, job, start, lines)
	total := lokitest.Total(streams)
	// Re-sent lines carry the same timestamp, which Loki folds into one;
	// whatever duplicates remain are bounded by what was in flight.
	if missing > 0 || total < n || float64(total-n)*100 > maxLokiInflight {
		t.Errorf("Loki holds %d entries, %d of the %d lines missing (in flight at most %v bytes)", total, missing, n, maxLokiInflight)
	}
	t.Logf("after the outage: %d entries for %d lines; %v retries; max in flight %v record bytes",
		total, n, s.sum("accesslog_exporter_loki_retries_total", nil), maxInflight)
	r.stop(t)
}

func TestLokiRejectsOneOverlongLineAndMovesOn(t *testing.T) {
	url := needLoki(t)
	c := newCluster(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	lines := genRaw(t, 3000, 9, start)
	bad := []byte(strings.Repeat("A", 2*lokitest.MaxLineSize))
	lines = append(lines[:1500:1500], append([][]byte{bad}, lines[1500:]...)...)
	produceLines(t, c, lines)

	job := "e2e-overlong"
	r := startRun(t, c, lokiConfig(c, url, job))
	waitCommitted(t, r, int64(len(lines)), time.Minute)
	streams, err := lokitest.Query(url, `{job="`+job+`"}`, start.Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := lokitest.Total(streams); got != len(lines)-1 {
		t.Errorf("Loki holds %d lines, want the %d good ones", got, len(lines)-1)
	}
	s := parse(t, get(t, r.metrics))
	if v := s.sum("accesslog_exporter_loki_rejected_total", map[string]string{"reason": "line_too_long"}); v != 1 {
		t.Errorf("rejected{line_too_long} = %v, want 1; rejected: %v", v, s.sum("accesslog_exporter_loki_rejected_total", nil))
	}
	r.stop(t)
}

// inLoki reads job's streams back from Loki and counts the lines that are
// not among them.
func inLoki(t *testing.T, url, job string, start time.Time, lines [][]byte) (streams []lokitest.Stream, missing int) {
	t.Helper()
	streams, err := lokitest.Query(url, `{job="`+job+`"}`, start.Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range streams {
		for _, e := range s.Entries {
			seen[e.Line] = true
		}
	}
	for _, l := range lines {
		if !seen[string(l)] {
			missing++
		}
	}
	return streams, missing
}
