package kafka

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/component"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafkaclient"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

const topic = testbed.Topic

// produce writes n records with values "0".."n-1", spread over partitions.
func produce(t *testing.T, c *kfake.Cluster, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func testConfig(c *kfake.Cluster, group string) config.Kafka {
	return config.Kafka{
		Brokers:        c.ListenAddrs(),
		Topics:         []string{topic},
		Group:          group,
		ClientID:       "test",
		StartOffset:    "earliest",
		CommitInterval: 100 * time.Millisecond,
		Workers:        3,
	}
}

// fastGroup makes rebalances take tenths of a second instead of seconds.
var fastGroup = []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond), kgo.SessionTimeout(2 * time.Second), kgo.RebalanceTimeout(2 * time.Second)}

// counter is a Processor that counts what it sees per value, so duplicates
// and losses are both visible.
type counter struct {
	mu    sync.Mutex
	seen  map[string]int
	total atomic.Int64
	// hook, when set, runs before a batch is released; it may block.
	hook func(b *Batch)
}

func newCounter() *counter { return &counter{seen: map[string]int{}} }

func (c *counter) processor(int) Processor { return c }

func (c *counter) Process(b *Batch) {
	if c.hook != nil {
		c.hook(b)
	}
	c.mu.Lock()
	for _, r := range b.Records {
		c.seen[string(r.Value)]++
	}
	c.mu.Unlock()
	c.total.Add(int64(len(b.Records)))
	b.Release()
}

func (c *counter) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// start runs a consumer until the test ends; stop cancels it and returns
// Run's error, and may be called more than once.
func start(t *testing.T, cfg config.Kafka, p func(int) Processor, extra ...kgo.Opt) (c *Consumer, stop func() error) {
	t.Helper()
	return startWith(t, cfg, Options{NewProcessor: p, ExtraOpts: append(append([]kgo.Opt{}, fastGroup...), extra...), ShutdownTimeout: 5 * time.Second, RevokeTimeout: 2 * time.Second})
}

// startWith is start with the member's options given whole.
func startWith(t *testing.T, cfg config.Kafka, opts Options) (c *Consumer, stop func() error) {
	t.Helper()
	c, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = c.Run(ctx); close(done) }()
	stop = func() error {
		cancel()
		select {
		case <-done:
			return runErr
		case <-time.After(20 * time.Second):
			t.Error("consumer did not stop within 20s")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return c, stop
}

// committed returns the group's committed offsets summed over partitions,
// and the topic's end offsets likewise.
func committed(t *testing.T, c *kfake.Cluster, group string) (commit, end int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.At > 0 {
			commit += o.At
		}
	})
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) { end += o.Offset })
	return commit, end
}

func TestConsumeAllAndCommitToEnd(t *testing.T) {
	c := testbed.Cluster(t)
	const n = 5000
	produce(t, c, 0, n)
	cnt := newCounter()
	cons, stop := start(t, testConfig(c, "g1"), cnt.processor)
	testbed.WaitFor(t, "all records processed", 20*time.Second, func() bool { return cnt.total.Load() >= n })
	testbed.WaitFor(t, "readiness", 5*time.Second, func() bool { ok, _ := cons.Ready(); return ok })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := cnt.total.Load(); got != n {
		t.Errorf("processed %d records, want exactly %d", got, n)
	}
	if got := cnt.distinct(); got != n {
		t.Errorf("distinct values %d, want %d", got, n)
	}
	commit, end := committed(t, c, "g1")
	if commit != end || end != n {
		t.Errorf("committed %d, end offsets %d, want both %d", commit, end, n)
	}
}

func TestNotReadyBeforeJoin(t *testing.T) {
	// Nothing listens on port 1: the member can never join, so the answer
	// cannot race with a join.
	cfg := config.Kafka{Brokers: []string{"127.0.0.1:1"}, Topics: []string{topic}, Group: "g-ready"}
	cons, err := New(cfg, Options{NewProcessor: newCounter().processor})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Client().Close()
	ok, why := cons.Ready()
	if ok || !strings.Contains(why, `waiting to join consumer group "g-ready"`) {
		t.Errorf("Ready() = %v, %q; want not ready, waiting to join", ok, why)
	}
}

// A crash mid-stream: the first member stops processing, is closed without a
// final commit of what it still holds, and a second member starts from the
// committed offsets. Duplicates are exactly the processed-but-uncommitted
// tail; nothing is lost.
func TestRestartResumesFromCommitted(t *testing.T) {
	c := testbed.Cluster(t)
	const n = 6000
	produce(t, c, 0, n)

	first := newCounter()
	release := make(chan struct{})
	var holding atomic.Bool
	first.hook = func(b *Batch) {
		if first.total.Load() >= n/3 {
			holding.Store(true)
			<-release // a hung worker: its batches are never released
		}
	}
	cfg := testConfig(c, "g-restart")
	cons1, err := New(cfg, Options{NewProcessor: first.processor, ExtraOpts: fastGroup, ShutdownTimeout: 200 * time.Millisecond, RevokeTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- cons1.Run(ctx1) }()
	testbed.WaitFor(t, "first member to hang", 20*time.Second, holding.Load)
	cancel1()
	select {
	case <-done1:
	case <-time.After(10 * time.Second):
		t.Fatal("first member did not stop")
	}
	close(release)
	commit1, _ := committed(t, c, "g-restart")
	processed1 := first.total.Load()
	if commit1 > processed1 {
		t.Fatalf("committed %d records but only %d were processed: a commit ran ahead of processing", commit1, processed1)
	}

	second := newCounter()
	start(t, cfg, second.processor)
	testbed.WaitFor(t, "second member to reach the end", 20*time.Second, func() bool { c2, _ := committed(t, c, "g-restart"); return c2 == n })
	processed2 := second.total.Load()
	if processed2 != n-commit1 {
		t.Errorf("second member processed %d, want exactly the uncommitted %d", processed2, n-commit1)
	}
	dups := processed1 + processed2 - n
	if dups < 0 {
		t.Fatalf("lost %d records", -dups)
	}
	if dups != processed1-commit1 {
		t.Errorf("duplicates %d, want only the uncommitted tail %d", dups, processed1-commit1)
	}
	all := map[string]bool{}
	for _, cn := range []*counter{first, second} {
		cn.mu.Lock()
		for v := range cn.seen {
			all[v] = true
		}
		cn.mu.Unlock()
	}
	if len(all) != n {
		t.Errorf("saw %d distinct records across both runs, want %d", len(all), n)
	}
}

func TestTwoMembersOneLeaves(t *testing.T) {
	c := testbed.Cluster(t)
	const n = 4000
	cfg := testConfig(c, "g-two")
	a, b := newCounter(), newCounter()
	consA, stopA := start(t, cfg, a.processor)
	consB, _ := start(t, cfg, b.processor)
	testbed.WaitFor(t, "both members to own partitions", 20*time.Second, func() bool {
		return len(consA.owned()) > 0 && len(consB.owned()) > 0 && len(consA.owned())+len(consB.owned()) == 6
	})
	produce(t, c, 0, n)
	testbed.WaitFor(t, "first half", 20*time.Second, func() bool { return a.total.Load()+b.total.Load() >= n })
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	testbed.WaitFor(t, "B to own every partition", 20*time.Second, func() bool { return len(consB.owned()) == 6 })
	produce(t, c, n, n)
	testbed.WaitFor(t, "everything committed", 20*time.Second, func() bool { cm, _ := committed(t, c, "g-two"); return cm == 2*n })
	seen := map[string]bool{}
	for _, cn := range []*counter{a, b} {
		cn.mu.Lock()
		for v := range cn.seen {
			seen[v] = true
		}
		cn.mu.Unlock()
	}
	if len(seen) != 2*n {
		t.Errorf("saw %d distinct records, want %d (nothing lost)", len(seen), 2*n)
	}
	if a.total.Load() == 0 || b.total.Load() == 0 {
		t.Errorf("work not shared: a=%d b=%d", a.total.Load(), b.total.Load())
	}
}

func TestBrokerLossKeepsConsuming(t *testing.T) {
	c := testbed.Cluster(t)
	cnt := newCounter()
	start(t, testConfig(c, "g-loss"), cnt.processor, kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	produce(t, c, 0, 1000)
	testbed.WaitFor(t, "first records", 20*time.Second, func() bool { return cnt.total.Load() >= 1000 })
	// Remove a broker that is not the group coordinator's only home: kfake
	// moves its partitions' leadership to the survivors.
	if err := c.RemoveNode(2); err != nil {
		t.Fatal(err)
	}
	produce(t, c, 1000, 1000)
	testbed.WaitFor(t, "records after broker loss", 30*time.Second, func() bool { return cnt.distinct() == 2000 })
	testbed.WaitFor(t, "commits after broker loss", 30*time.Second, func() bool { cm, _ := committed(t, c, "g-loss"); return cm == 2000 })
}

func TestShutdownFinishesInFlightAndCommits(t *testing.T) {
	c := testbed.Cluster(t)
	const n = 3000
	produce(t, c, 0, n)
	cnt := newCounter()
	inFlight := make(chan struct{}, 1)
	cnt.hook = func(b *Batch) {
		select {
		case inFlight <- struct{}{}:
		default:
		}
		time.Sleep(20 * time.Millisecond) // simulated slow work, not synchronisation
	}
	cfg := testConfig(c, "g-shutdown")
	cfg.CommitInterval = time.Hour // only the shutdown commit can make progress
	_, stop := start(t, cfg, cnt.processor)
	<-inFlight
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	commit, _ := committed(t, c, "g-shutdown")
	if commit == 0 || commit != cnt.total.Load() {
		t.Errorf("committed %d, processed %d: shutdown must commit exactly what was processed", commit, cnt.total.Load())
	}
}

func TestBadConfigNamesField(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := config.Kafka{Brokers: []string{"127.0.0.1:1"}, Topics: []string{topic}, Group: "g"}
	for _, tc := range []struct {
		name string
		edit func(*config.Kafka)
		want string
	}{
		{"unknown sasl mechanism", func(k *config.Kafka) { k.SASL = config.SASL{Mechanism: "GSSAPI", Username: "u", PasswordFile: pw} }, "kafka.sasl.mechanism"},
		{"sasl without password file", func(k *config.Kafka) { k.SASL = config.SASL{Mechanism: "PLAIN", Username: "u"} }, "kafka.sasl.password_file"},
		{"missing CA file", func(k *config.Kafka) {
			k.TLS = config.KafkaTLS{Enabled: true, TLS: config.TLS{CAFile: filepath.Join(dir, "nope.pem")}}
		}, "kafka.tls.ca_file"},
		{"empty topic list", func(k *config.Kafka) { k.Topics = nil }, "kafka.topics"},
		{"no brokers", func(k *config.Kafka) { k.Brokers = nil }, "kafka.brokers"},
		{"bad start offset", func(k *config.Kafka) { k.StartOffset = "middle" }, "kafka.start_offset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := base
			tc.edit(&k)
			_, err := New(k, Options{NewProcessor: newCounter().processor})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New() error = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestSASLAgainstBroker(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := testbed.Cluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "admin", "s3cret"))
			cfg := testConfig(c, "g-sasl")
			cfg.SASL = config.SASL{Mechanism: mech, Username: "admin", PasswordFile: pw}
			opts, err := kafkaclient.Opts(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			cl.Close()
			cnt := newCounter()
			start(t, cfg, cnt.processor)
			testbed.WaitFor(t, "record over SASL", 20*time.Second, func() bool { return cnt.total.Load() == 1 })
		})
	}
}

// A member reports each offset commit as its component cycle (success and
// duration), as every component of the exporter does.
func TestCommitReportsComponentStatus(t *testing.T) {
	c := testbed.Cluster(t)
	produce(t, c, 0, 100)
	set := component.NewSet()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)
	cnt := newCounter()
	startWith(t, testConfig(c, "g-status"), Options{NewProcessor: cnt.processor, ExtraOpts: fastGroup, Status: set.Component("kafka_metrics")})
	testbed.Eventually(t, 20*time.Second, func() []string {
		want := `
# HELP accesslog_exporter_component_success 1 if the component's last cycle succeeded, else 0: a commit for a Kafka consumer, a push for the log store and push, a poll for the health poller, an export for tracing.
# TYPE accesslog_exporter_component_success gauge
accesslog_exporter_component_success{component="kafka_metrics"} 1
`
		if err := promtestutil.GatherAndCompare(reg, strings.NewReader(want), "accesslog_exporter_component_success"); err != nil {
			return []string{err.Error()}
		}
		return nil
	})
}
