package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
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
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// newStore is the package's log store: an in-process Loki push endpoint
// (lokitest.Receiver) with Loki's default limits.
func newStore(t testing.TB, opts ...lokitest.Option) *lokitest.Receiver {
	t.Helper()
	return lokitest.NewReceiver(t, opts...)
}

// unacknowledgedStored is the number of entries the store kept from pushes
// whose 2xx never reached the client (an answer lost, a 400 for another
// entry of the same push) or may not have: a 2xx written after half the
// client's timeout (a push held by a slow store, on a loaded machine, past
// the moment the client gave up). The client re-sends those, so they bound
// the duplicates a store that does not fold them can hold.
func unacknowledgedStored(r *lokitest.Receiver, timeout time.Duration) int {
	n := 0
	for _, q := range r.Requests() {
		if q.Status/100 != 2 || q.Answered.Sub(q.At) >= timeout/2 {
			n += q.Stored
		}
	}
	return n
}

// largestPush is the most entries the store kept from one push.
func largestPush(r *lokitest.Receiver) int {
	n := 0
	for _, q := range r.Requests() {
		n = max(n, q.Stored)
	}
	return n
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
	c := testbed.Cluster(t)
	return c
}

// produceLines writes lines round-robin over the partitions in small
// batches (so that polls are small and the in-flight bound can bite).
func produceLines(t *testing.T, c *kfake.Cluster, lines [][]byte, opts ...kgo.Opt) {
	t.Helper()
	prod, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("nginxlog"),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerBatchMaxBytes(64 << 10)}, opts...)...)
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
	testbed.Eventually(t, d, func() []string {
		if commit, end := committedTotal(t, r.cluster, r.group); commit != n || end != n {
			return []string{fmt.Sprintf("committed %d of %d offsets (end %d)", commit, n, end)}
		}
		return nil
	})
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
	store := newStore(t)
	c := newCluster(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	lines, want := genMixed(t, 5000, start)
	produceLines(t, c, lines)

	job := "e2e-every-line"
	produced := time.Now()
	r := startRun(t, c, lokiConfig(c, store.URL(), job))
	// The contract: an offset is committed only once Loki has acknowledged
	// every line before it. So once all are committed, all are stored.
	waitCommitted(t, r, int64(len(lines)), time.Minute)
	streams := store.Streams()
	got := lokitest.Count(streams, "host", "parse_status")
	if total := lokitest.Total(streams); total != len(lines) || store.Duplicates() != 0 {
		t.Errorf("the store holds %d lines (%d duplicates), want exactly %d", total, store.Duplicates(), len(lines))
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
	// The entry's time: the line's own time (plus the offset tie-break
	// below 1 ms); for an unparsed line in a Filebeat envelope its
	// @timestamp; for an
	// unparsed raw line the Kafka record's time (when it was produced).
	checked := map[string]int{}
	for _, s := range streams {
		if s.Labels["job"] != job {
			t.Errorf("stream without job=%s: %v", job, s.Labels)
		}
		for _, e := range s.Entries {
			kind := s.Labels["parse_status"]
			if kind == "unparsed" && s.Labels["host"] == "" {
				if e.Time.Before(start) || e.Time.After(produced.Add(time.Millisecond)) {
					t.Errorf("unparsed raw line at %v, want its record's time (produced before %v): %q", e.Time, produced, e.Line)
				}
				checked["record time"]++
				continue
			}
			ts, ok := lineTime(e.Line)
			if !ok {
				continue
			}
			// loggen's @timestamp is the line's clock (with the sub-second
			// part $time_local lacks) plus up to 250 ms of shipping delay.
			within := time.Millisecond
			if kind == "unparsed" {
				within = 1251 * time.Millisecond
			}
			if d := e.Time.Sub(ts); d < 0 || d >= within {
				t.Errorf("%s entry at %v for a line logged at %v: %s", kind, e.Time, ts, e.Line)
			}
			checked[kind]++
		}
	}
	if checked["parsed"] < len(lines)/2 || checked["unparsed"] == 0 || checked["record time"] == 0 {
		t.Errorf("timestamps checked: %v; want every kind", checked)
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
	store := newStore(t)
	store.SetFault(lokitest.Status(http.StatusInternalServerError))

	c := newCluster(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	const n = 20000
	lines := genRaw(t, n, 7, start)
	// Uncompressed, so that a fetch's bytes bound its records' bytes, which
	// the in-flight check below counts (snappy batches of these lines hold
	// about twice their size in records, and one poll past the bound could
	// then bring more than the check allows).
	produceLines(t, c, lines, kgo.ProducerBatchCompression(kgo.NoCompression()))

	job := "e2e-outage"
	cfg := lokiConfig(c, store.URL(), job)
	const bound = 512 << 10
	cfg.Loki.MaxInflightBytes = bound
	cfg.Loki.Batch.MaxBytes = 64 << 10
	cfg.Loki.Timeout = time.Second
	cfg.Kafka.FetchMaxBytes = 128 << 10
	cfg.Kafka.FetchMaxPartitionBytes = 64 << 10
	r := startRun(t, c, cfg)

	// Every kind of outage in turn; none may let a commit through, and
	// the log path's fetching must stay paused at the bound (the metrics
	// member, in its own group, goes on).
	logSink := map[string]string{"sink": "logs"}
	var maxInflight, maxLokiInflight float64
	paused := false
	for _, phase := range []struct {
		name  string
		fault lokitest.Fault
	}{
		{"500", lokitest.Status(http.StatusInternalServerError)},
		{"429 with Retry-After", lokitest.Status(http.StatusTooManyRequests).RetryAfter("1")},
		{"connection refused", lokitest.Refuse()},
		{"connection cut mid-body", lokitest.CutBody()},
		{"answer lost after Loki stored the lines", lokitest.LoseAnswer()},
		// Three times the timeout: a store that answers 2xx a moment after
		// a loaded client gave up would store lines the bound below does
		// not count.
		{"slower than the push timeout", lokitest.Delay(3 * time.Second)},
	} {
		store.SetFault(phase.fault)
		before := store.RequestCount()
		refusedBefore := parse(t, get(t, r.metrics)).sum("accesslog_exporter_loki_retries_total", map[string]string{"reason": "network"})
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			s := parse(t, get(t, r.metrics))
			maxInflight = max(maxInflight, s.sum("accesslog_exporter_inflight_record_bytes", logSink))
			maxLokiInflight = max(maxLokiInflight, s.sum("accesslog_exporter_loki_inflight_bytes", nil))
			paused = paused || s.sum("accesslog_exporter_fetch_paused", logSink) == 1
			time.Sleep(100 * time.Millisecond)
		}
		if commit, _ := committedTotal(t, c, r.group); commit != 0 {
			t.Fatalf("during %s: %d offsets committed, but Loki acknowledged nothing", phase.name, commit)
		}
		// A refused connection never reaches the store; the client counts it.
		if store.RequestCount() == before && parse(t, get(t, r.metrics)).sum("accesslog_exporter_loki_retries_total", map[string]string{"reason": "network"}) == refusedBefore {
			t.Errorf("during %s: no push attempted", phase.name)
		}
	}
	s := parse(t, get(t, r.metrics))
	if !paused {
		t.Error("fetching never paused during the outage")
	}
	if pending := s.sum("accesslog_exporter_partition_pending_offsets", logSink); pending == 0 || pending >= n {
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

	timeouts := map[string]string{"reason": "timeout"}
	timedOut := s.sum("accesslog_exporter_loki_retries_total", timeouts)
	store.SetFault(lokitest.NoFault)
	waitCommitted(t, r, n, 2*time.Minute)
	// Nothing lost; duplicates only from pushes stored without an answer
	// the client saw (the LoseAnswer phase), which it had to send again.
	// On a loaded machine a push of the healthy store can also time out on
	// the client's side (1 s here) while the store, which starts its clock
	// only when the handler runs, answered it quickly: each such timeout
	// the client counts may leave one push's entries behind twice.
	stray := parse(t, get(t, r.metrics)).sum("accesslog_exporter_loki_retries_total", timeouts) - timedOut
	missing := store.Missing(lines)
	dups, dupBound := store.Duplicates(), unacknowledgedStored(store, cfg.Loki.Timeout)+int(stray)*largestPush(store)
	if len(missing) > 0 || store.DistinctLines() != n || dups > dupBound {
		t.Errorf("the store holds %d distinct lines of %d, %d missing; %d duplicates, bound %d (%v timeouts on the healthy store)", store.DistinctLines(), n, len(missing), dups, dupBound, stray)
	}
	t.Logf("after the outage: %d entries for %d lines (%d duplicates); %v retries; max in flight %v record bytes",
		store.Len(), n, dups, s.sum("accesslog_exporter_loki_retries_total", nil), maxInflight)
	r.stop(t)
}

func TestLokiRejectsOneOverlongLineAndMovesOn(t *testing.T) {
	// A store whose line limit is below the exporter's own cap
	// (loki.max_line_bytes), as a Loki with a smaller max_line_size.
	limits := lokitest.LokiDefaults()
	limits.MaxLineSize = 16 << 10
	store := newStore(t, lokitest.WithLimits(limits))
	c := newCluster(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	lines := genRaw(t, 3000, 9, start)
	bad := []byte(strings.Repeat("A", 2*limits.MaxLineSize))
	lines = append(lines[:1500:1500], append([][]byte{bad}, lines[1500:]...)...)
	produceLines(t, c, lines)

	job := "e2e-overlong"
	cfg := lokiConfig(c, store.URL(), job)
	r := startRun(t, c, cfg)
	waitCommitted(t, r, int64(len(lines)), time.Minute)
	// Loki stores the good entries of a push it answers 400, so the halves
	// the client splits off and sends again leave duplicates behind.
	missing := store.Missing(lines)
	dups, dupBound := store.Duplicates(), unacknowledgedStored(store, cfg.Loki.Timeout)
	if len(missing) != 1 || string(missing[0]) != string(bad) || store.DistinctLines() != len(lines)-1 || dups > dupBound {
		t.Errorf("the store holds %d distinct lines, want the %d good ones; %d missing (want only the bad one); %d duplicates, bound %d",
			store.DistinctLines(), len(lines)-1, len(missing), dups, dupBound)
	}
	s := parse(t, get(t, r.metrics))
	if v := s.sum("accesslog_exporter_loki_rejected_total", map[string]string{"reason": "line_too_long"}); v != 1 {
		t.Errorf("rejected{line_too_long} = %v, want 1; rejected: %v", v, s.sum("accesslog_exporter_loki_rejected_total", nil))
	}
	r.stop(t)
}

// waitProcessed waits until the run's metrics member has counted n
// records and its log member has put n lines into batches; batches stay
// open (max_wait and max_bytes far away), so nothing has been pushed. The
// members fetch on their own, so one having read a line says nothing of
// the other.
func waitProcessed(t *testing.T, r *lokiRun, n int) {
	t.Helper()
	testbed.Eventually(t, time.Minute, func() []string {
		s := parse(t, get(t, r.metrics))
		var errs []string
		if got := s.sum("accesslog_exporter_records_total", nil); got != float64(n) {
			errs = append(errs, fmt.Sprintf("%v of %d records counted", got, n))
		}
		if got := s.sum("accesslog_exporter_loki_shared_decodes_total", nil); got != float64(n) {
			errs = append(errs, fmt.Sprintf("%v of %d lines batched for the store", got, n))
		}
		return errs
	})
}

// openBatches is a config whose batches are sealed only by a flush: none
// fills up and none gets old within a test.
func openBatches(cfg config.Config) config.Config {
	cfg.Loki.Batch.MaxWait = 10 * time.Minute
	cfg.Loki.Batch.MaxBytes = 8 << 20
	return cfg
}

// On shutdown the open batches are pushed, acknowledged and committed
// before Run returns.
func TestLokiShutdownFlushesAndCommits(t *testing.T) {
	store := newStore(t)
	c := newCluster(t)
	lines := genRaw(t, 3000, 21, time.Now().Add(-time.Minute).Truncate(time.Second))
	produceLines(t, c, lines)
	r := startRun(t, c, openBatches(lokiConfig(c, store.URL(), "e2e-shutdown")))
	waitProcessed(t, r, len(lines))
	commitBefore, _ := committedTotal(t, c, r.group)
	pushesBefore := store.RequestCount()
	r.stop(t)
	commit, end := committedTotal(t, c, r.group)
	missing := store.Missing(lines)
	if commitBefore != 0 || pushesBefore != 0 || commit != end || end != int64(len(lines)) || len(missing) > 0 || store.Duplicates() != 0 {
		t.Errorf("before shutdown %d committed and %d pushes (want 0, 0); after: %d of %d committed, %d lines missing, %d duplicates",
			commitBefore, pushesBefore, commit, end, len(missing), store.Duplicates())
	}
}

// When a second member joins, the first flushes its open batches before it
// gives partitions up, and commits what the store acknowledged: the new
// owner starts after the last acknowledged line, and nothing waits for
// max_wait.
func TestLokiRevokeFlushesAndCommits(t *testing.T) {
	store := newStore(t)
	c := newCluster(t)
	lines := genRaw(t, 3000, 22, time.Now().Add(-time.Minute).Truncate(time.Second))
	produceLines(t, c, lines)
	cfg := openBatches(lokiConfig(c, store.URL(), "e2e-revoke"))
	first := startRun(t, c, cfg)
	waitProcessed(t, first, len(lines))
	commitBefore, _ := committedTotal(t, c, first.group)
	pushesBefore := store.RequestCount()
	startRun(t, c, cfg)
	var commit, end int64
	testbed.WaitFor(t, "every offset committed after the rebalance", 30*time.Second, func() bool {
		commit, end = committedTotal(t, c, first.group)
		return commit == int64(len(lines))
	})
	missing := store.Missing(lines)
	if commitBefore != 0 || pushesBefore != 0 || commit != end || end != int64(len(lines)) || len(missing) > 0 || store.Duplicates() != 0 {
		t.Errorf("before the rebalance %d committed and %d pushes (want 0, 0); after: %d of %d committed, %d lines missing, %d duplicates",
			commitBefore, pushesBefore, commit, end, len(missing), store.Duplicates())
	}
}
