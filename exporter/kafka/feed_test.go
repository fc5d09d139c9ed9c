package kafka

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// traffic produces records with values "0", "1", ... spread over the
// partitions, a few every 10ms, until stopped: both members stay caught
// up, which is when the follower takes the leader's fetch.
type traffic struct {
	n    atomic.Int64
	stop func()
	done chan struct{}
}

func startTraffic(t *testing.T, c *kfake.Cluster) *traffic {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		defer cl.Close()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			recs := make([]*kgo.Record, 24)
			for i := range recs {
				recs[i] = &kgo.Record{Topic: topic, Value: fmt.Append(nil, tr.n.Load()+int64(i))}
			}
			// A record not produced is not counted: the test's want is what
			// Kafka has. Stopping does not cut a produce short, or records
			// Kafka stored would be left uncounted (and their values reused).
			pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := cl.ProduceSync(pctx, recs...).FirstErr()
			cancel()
			if err != nil {
				return
			}
			tr.n.Add(int64(len(recs)))
		}
	}()
	t.Cleanup(func() { tr.stop(); <-tr.done })
	return tr
}

func (tr *traffic) end() int64 {
	tr.stop()
	<-tr.done
	return tr.n.Load()
}

// sink is a follower's processor standing in for the log store: it notes
// every record, and while down retains the batches (unacknowledged) until
// it comes back.
type sink struct {
	counter
	down atomic.Bool
	held []*Batch
	hmu  sync.Mutex
}

func newSink() *sink { return &sink{counter: counter{seen: map[string]int{}}} }

func (s *sink) processor(int) Processor { return s }

func (s *sink) Process(b *Batch) {
	if s.down.Load() {
		b.Retain()
		s.hmu.Lock()
		s.held = append(s.held, b)
		s.hmu.Unlock()
	}
	s.counter.Process(b)
}

func (s *sink) up() {
	s.down.Store(false)
	s.hmu.Lock()
	held := s.held
	s.held = nil
	s.hmu.Unlock()
	for _, b := range held {
		b.Release()
	}
}

// check says which of the values 0..n-1 were not seen, and which were seen
// more than once (dups counts the extra sightings).
func (c *counter) check(n int64) (missing []int64, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range n {
		switch k := c.seen[fmt.Sprint(i)]; {
		case k == 0:
			missing = append(missing, i)
		case k > 1:
			dups += k - 1
		}
	}
	return missing, dups
}

// merged is what the counters saw together.
func merged(cs ...*counter) *counter {
	m := newCounter()
	for _, c := range cs {
		if c == nil {
			continue
		}
		c.mu.Lock()
		for v, k := range c.seen {
			m.seen[v] += k
		}
		c.mu.Unlock()
	}
	return m
}

type feedRun struct {
	feed     *Feed
	leader   *Consumer
	follower *Consumer
	metrics  *counter
	logs     *sink
	// alsoCounted is another member of the leader's group, when there was one.
	alsoCounted *counter
	// leaderStuck holds the leader's worker (a defect, a starved process).
	leaderStuck atomic.Bool
	// fetched counts the records the follower's own client fetched.
	fetched fetchCount
}

type fetchCount struct{ n atomic.Int64 }

func (f *fetchCount) OnFetchRecordBuffered(*kgo.Record) { f.n.Add(1) }

// startPair runs a leader (group lead) and a follower (group follow)
// sharing one feed, as the metrics and log members of one process do.
func startPair(t *testing.T, c *kfake.Cluster, budget, inflight int64) *feedRun {
	t.Helper()
	r := &feedRun{feed: NewFeed(budget), metrics: newCounter(), logs: newSink()}
	r.feed.quiet = 500 * time.Millisecond
	r.metrics.hook = func(*Batch) {
		for r.leaderStuck.Load() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	opts := func(p func(int) Processor) Options {
		return Options{NewProcessor: p, ExtraOpts: append(append([]kgo.Opt{}, fastGroup...), kgo.FetchMaxWait(100*time.Millisecond)),
			ShutdownTimeout: 5 * time.Second, RevokeTimeout: 2 * time.Second}
	}
	lo := opts(r.metrics.processor)
	lo.Lead = r.feed
	r.leader, _ = startWith(t, testConfig(c, "lead"), lo)
	fo := opts(r.logs.processor)
	fo.ExtraOpts = append(fo.ExtraOpts, kgo.WithHooks(&r.fetched))
	fo.Follow, fo.Sink, fo.MaxInflightBytes = r.feed, "logs", inflight
	r.follower, _ = startWith(t, testConfig(c, "follow"), fo)
	return r
}

func (r *feedRun) fed() float64 { return promtestutil.ToFloat64(r.follower.fedRecords) }

func (r *feedRun) stops(reason string) float64 {
	return promtestutil.ToFloat64(r.follower.feedStops.WithLabelValues(reason))
}

// finish ends the traffic and waits until both members have every record
// and both groups have committed them; it reports every mismatch at once.
func (r *feedRun) finish(t *testing.T, c *kfake.Cluster, tr *traffic, logs ...*counter) int64 {
	t.Helper()
	n := tr.end()
	logs = append(logs, &r.logs.counter)
	testbed.Eventually(t, 30*time.Second, func() []string {
		var errs []string
		if missing, _ := merged(r.metrics, r.alsoCounted).check(n); len(missing) > 0 {
			errs = append(errs, fmt.Sprintf("leader lacks %d of %d records", len(missing), n))
		}
		if missing, _ := merged(logs...).check(n); len(missing) > 0 {
			errs = append(errs, fmt.Sprintf("followers lack %d of %d records, e.g. %v", len(missing), n, missing[:min(5, len(missing))]))
		}
		for _, g := range []string{"lead", "follow"} {
			if commit, end := committed(t, c, g); commit != end || end != n {
				errs = append(errs, fmt.Sprintf("group %s committed %d of %d (produced %d)", g, commit, end, n))
			}
		}
		return errs
	})
	return n
}

// While both keep up the follower takes the leader's records instead of
// fetching them, and sees each exactly once.
func TestFollowerTakesTheLeadersFetch(t *testing.T) {
	c := testbed.Cluster(t)
	tr := startTraffic(t, c)
	r := startPair(t, c, 0, 0)
	testbed.WaitFor(t, "the follower to take records from the feed", 20*time.Second, func() bool { return r.fed() > 1000 })
	n := r.finish(t, c, tr)
	if _, dups := r.logs.check(n); dups > 0 {
		t.Errorf("the follower saw %d records twice, want each once", dups)
	}
	if _, dups := r.metrics.check(n); dups > 0 {
		t.Errorf("the leader saw %d records twice, want each once", dups)
	}
	t.Logf("%d records, %.0f taken from the feed", n, r.fed())
}

// A log-store outage while following: the follower stops acknowledging,
// pauses at its in-flight bound, falls more than the feed's budget behind
// and is stopped; the leader goes on alone. Once the store is back the
// follower fetches itself from where it was, loses nothing and sees
// nothing twice, and follows again once in step.
func TestFollowerFallsBehindAndFetchesItself(t *testing.T) {
	c := testbed.Cluster(t)
	tr := startTraffic(t, c)
	r := startPair(t, c, 4000, 8000)
	testbed.WaitFor(t, "the follower to take records from the feed", 20*time.Second, func() bool { return r.fed() > 2000 })

	r.logs.down.Store(true)
	testbed.WaitFor(t, "the follower to pause at its bound", 20*time.Second, r.follower.Paused)
	stalled := r.logs.total.Load()
	counted := r.metrics.total.Load()
	// The leader never waits for the follower: it goes on counting.
	testbed.WaitFor(t, "the leader to go on while the follower is paused", 20*time.Second, func() bool {
		return r.metrics.total.Load() > counted+2000
	})
	if got := r.logs.total.Load(); got > stalled+8000 {
		t.Errorf("the follower took %d records while paused at its bound", got-stalled)
	}
	if commit, _ := committed(t, c, "follow"); commit > stalled {
		t.Errorf("the follow group committed %d, past the %d records handed out before the outage", commit, stalled)
	}

	r.logs.up()
	fedBefore := r.fed()
	testbed.WaitFor(t, "the follower to follow again after the outage", 30*time.Second, func() bool { return r.fed() > fedBefore+500 })
	n := r.finish(t, c, tr)
	var errs []string
	if _, dups := r.logs.check(n); dups > 0 {
		errs = append(errs, fmt.Sprintf("the follower saw %d records twice, want each once", dups))
	}
	if s := r.stops("behind"); s < 1 {
		errs = append(errs, fmt.Sprintf("feed stops for being behind: %v, want at least 1", s))
	}
	// Back on its own fetch it starts where it was, not where its fetch
	// paused: what it took from the feed is not fetched again.
	// Its fetches stripped at a pause are fetched again (a few hundred
	// records); without SetOffsets everything fed before the outage was.
	own, fed := r.fetched.n.Load(), int64(r.fed())
	if own+fed > n+1000 {
		errs = append(errs, fmt.Sprintf("the follower fetched %d records itself and took %d from the feed, of %d: it fetched again what it had taken", own, fed, n))
	}
	for _, e := range errs {
		t.Error(e)
	}
}

// The leader loses partitions to another member of its group: the follower
// fetches those itself again, from its own position, and loses nothing.
func TestFollowerWhenTheLeaderLosesPartitions(t *testing.T) {
	c := testbed.Cluster(t)
	tr := startTraffic(t, c)
	r := startPair(t, c, 0, 0)
	testbed.WaitFor(t, "the follower to take records from the feed", 20*time.Second, func() bool { return r.fed() > 500 })

	other := newCounter()
	_, stopOther := start(t, testConfig(c, "lead"), other.processor, kgo.FetchMaxWait(100*time.Millisecond))
	testbed.WaitFor(t, "the follower to stop following what the leader lost", 20*time.Second, func() bool { return r.stops("leader_gone") >= 1 })
	testbed.WaitFor(t, "the other leader to count", 20*time.Second, func() bool { return other.total.Load() > 0 })
	if err := stopOther(); err != nil {
		t.Fatal(err)
	}
	fedBefore := r.fed()
	testbed.WaitFor(t, "the follower to follow again", 30*time.Second, func() bool { return r.fed() > fedBefore+500 })

	// The leader's counter misses what the other member counted.
	r.alsoCounted = other
	n := r.finish(t, c, tr)
	if _, dups := r.logs.check(n); dups > 0 {
		t.Errorf("the follower saw %d records twice, want each once (its own group did not rebalance)", dups)
	}
}

// The follower's group rebalances: another member takes some of its
// partitions and leaves again. What the follower followed is handed over at
// the committed offsets: nothing is lost.
func TestFollowerGroupRebalance(t *testing.T) {
	c := testbed.Cluster(t)
	tr := startTraffic(t, c)
	r := startPair(t, c, 0, 0)
	testbed.WaitFor(t, "the follower to take records from the feed", 20*time.Second, func() bool { return r.fed() > 500 })

	other := newCounter()
	_, stopOther := start(t, testConfig(c, "follow"), other.processor, kgo.FetchMaxWait(100*time.Millisecond))
	testbed.WaitFor(t, "the other follower member to get records", 20*time.Second, func() bool { return other.total.Load() > 500 })
	if err := stopOther(); err != nil {
		t.Fatal(err)
	}
	fedBefore := r.fed()
	testbed.WaitFor(t, "the follower to follow again", 30*time.Second, func() bool { return r.fed() > fedBefore+500 })
	n := r.finish(t, c, tr, other)
	// Handovers commit what was handed out (both processors release at
	// once), so each record is seen once over both members.
	if _, dups := merged(&r.logs.counter, other).check(n); dups > 0 {
		t.Errorf("%d records seen twice over the two follower members, want none", dups)
	}
}

// The leader's worker is stuck: nothing comes from the feed, and the
// follower fetches itself again after the feed's quiet time, so the log
// path does not stop with the metrics path; once the leader is back it
// follows again.
func TestFollowerFetchesItselfWhileTheLeaderIsStuck(t *testing.T) {
	c := testbed.Cluster(t)
	tr := startTraffic(t, c)
	r := startPair(t, c, 0, 0)
	testbed.WaitFor(t, "the follower to take records from the feed", 20*time.Second, func() bool { return r.fed() > 500 })

	r.leaderStuck.Store(true)
	produced := tr.n.Load() + 2000
	testbed.WaitFor(t, "the follower to go on by itself while the leader is stuck", 20*time.Second, func() bool {
		return tr.n.Load() > produced && r.logs.distinct() >= int(produced)
	})
	if s := r.stops("quiet"); s < 1 {
		t.Errorf("feed stops for quiet: %v, want at least 1", s)
	}
	r.leaderStuck.Store(false)
	fedBefore := r.fed()
	testbed.WaitFor(t, "the follower to follow again", 30*time.Second, func() bool { return r.fed() > fedBefore+500 })
	n := r.finish(t, c, tr)
	if _, dups := r.logs.check(n); dups > 0 {
		t.Errorf("the follower saw %d records twice, want each once", dups)
	}
}
