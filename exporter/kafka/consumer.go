// Package kafka consumes the access-log topic as a consumer-group member
// with at-least-once delivery: a partition commits only what its Processor
// has released.
package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kprom"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/component"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// Processor handles batches. Each worker has its own Processor, so it may
// keep per-worker scratch state; all batches of one partition go to the same
// worker, in offset order. Process must Release the batch once, when done.
type Processor interface {
	Process(b *Batch)
}

// Options are the consumer's settings beyond the config file.
type Options struct {
	// NewProcessor is called once per worker.
	NewProcessor func(worker int) Processor
	// Sink names what this member feeds ("metrics" or "logs"); it labels
	// the member's self-metrics (sink="..."), so two members of one
	// process, each in its own group, report side by side. Default
	// "metrics".
	Sink string
	// ShutdownTimeout bounds all of Run's work after its context ends:
	// waiting for in-flight batches, the final commit and leaving the
	// group. A part of it (a quarter, at most 5s) is kept for the commit
	// and the leave, so a sink that never answers cannot make the member
	// time out of the group instead of leaving it. Default 10s.
	ShutdownTimeout time.Duration
	// RevokeTimeout bounds the wait for a revoked partition's in-flight
	// batches; what is not done by then is left to the new owner (duplicates,
	// never loss). Default 10s.
	RevokeTimeout time.Duration
	// MaxInflightBytes bounds the record bytes handed out and not yet
	// released by every holder (the processor, and Loki until it has
	// acknowledged). At the bound fetching pauses (PauseFetchPartitions)
	// until releases free room: Kafka keeps the backlog, memory stays
	// bounded. 0 means no bound.
	MaxInflightBytes int64
	// Flush, when set, is called when batches must finish soon: on shutdown
	// once the workers are done, and on revocation before waiting for the
	// revoked partitions. A sink that batches (Loki) sends what it holds.
	Flush func()
	// ExtraOpts are appended to the client's options (tests shorten
	// heartbeats with them).
	ExtraOpts []kgo.Opt
	Logger    *slog.Logger
	// Registerer receives the consumer's and franz-go's metrics; nil for none.
	Registerer prometheus.Registerer
	// Tracer traces offset commits; nil for none.
	Tracer trace.Tracer
	// Scraped, when set, makes the periodic commits wait for a scrape (the
	// metrics member): it says when the freshest scrape served was
	// gathered, and whether scrapes come regularly. While they do, an
	// offset is committed only once a scrape gathered after it was
	// counted, so a SIGKILL loses no count Prometheus has not seen: the
	// next owner counts those lines again. Commits at revocation and
	// shutdown do not wait (the process still serves what it counted).
	Scraped func() (gathered time.Time, regular bool)
	// Status, when set, gets every offset commit's success and duration:
	// the member's cycle, as the exporter reports for every component.
	Status *component.Status
	// Lead, when set, offers every fetched record to the feed's follower
	// once its batch is processed (the metrics member, for the log member
	// of the same process).
	Lead *Feed
	// Follow, when set, takes records from the feed's leader for the
	// partitions this member owns while it is in step with it, instead of
	// fetching them itself (see Feed).
	Follow *Feed
}

// Consumer is one member of the exporter's consumer group.
type Consumer struct {
	cfg    config.Kafka
	opts   Options
	log    *slog.Logger
	tracer trace.Tracer
	cl     *kgo.Client
	queues []chan *Batch

	mu    sync.Mutex
	parts map[tp]*partition

	// stop ends the client's own context: the last resort that bounds
	// Close when the group does not answer within the shutdown budget.
	stop context.CancelFunc

	joined  atomic.Bool
	fetched atomic.Bool
	dialErr dialError

	inflight atomic.Int64 // record bytes handed out and not yet released
	pauseMu  sync.Mutex
	paused   bool
	// following are the partitions taken from the feed: their own fetch
	// is paused whatever the in-flight bound says. Under pauseMu.
	following map[tp]bool
	wake      waker
	fromFeed  []fed

	fedRecords prometheus.Counter
	feedStops  *prometheus.CounterVec

	commits      prometheus.Counter
	commitErrors prometheus.Counter
	rebalances   *prometheus.CounterVec
	assigned     prometheus.Gauge
	pauses       prometheus.Counter
	info         prometheus.Gauge
	flow         flowDescs
}

type tp struct {
	topic string
	part  int32
}

// New builds a consumer; nothing connects until Run.
func New(cfg config.Kafka, opts Options) (*Consumer, error) {
	if opts.NewProcessor == nil {
		return nil, errors.New("kafka: Options.NewProcessor is required")
	}
	opts = opts.withDefaults()
	sink := prometheus.Labels{"sink": opts.Sink}
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	c := &Consumer{
		cfg:    cfg,
		opts:   opts,
		log:    opts.Logger,
		tracer: opts.Tracer,
		parts:  map[tp]*partition{},
		flow:   newFlowDescs(sink),

		following: map[tp]bool{},
	}
	c.newSelfMetrics(sink)
	kopts, err := consumeOpts(cfg)
	if err != nil {
		return nil, err
	}
	kopts = append(kopts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.WithHooks(fetchSeen{&c.fetched}, &c.dialErr),
	)
	clientCtx, stop := context.WithCancel(context.Background())
	c.stop = stop
	kopts = append(kopts, kgo.WithContext(clientCtx))
	if id := cfg.ExpandedInstanceID(); id != "" {
		kopts = append(kopts, kgo.InstanceID(id))
	}
	if opts.Registerer != nil {
		ms := []prometheus.Collector{c.commits, c.commitErrors, c.rebalances, c.assigned, c.pauses, c.info, flowCollector{c}}
		if opts.Follow != nil {
			ms = append(ms, c.fedRecords, c.feedStops)
		}
		for _, m := range ms {
			if err := opts.Registerer.Register(m); err != nil {
				return nil, err
			}
		}
		kopts = append(kopts, kgo.WithHooks(kprom.NewMetrics("accesslog_exporter",
			kprom.Subsystem("kafka_client"), kprom.Registerer(opts.Registerer), kprom.WithStaticLabel(sink))))
	}
	kopts = append(kopts, opts.ExtraOpts...)
	c.queues = make([]chan *Batch, workers)
	for i := range c.queues {
		// A short queue keeps in-flight data small; a full queue blocks the
		// poll loop, which is the backpressure towards Kafka.
		c.queues[i] = make(chan *Batch, 2)
	}
	if c.cl, err = kgo.NewClient(kopts...); err != nil {
		stop()
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return c, nil
}

// withDefaults fills the options left zero.
func (o Options) withDefaults() Options {
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.RevokeTimeout <= 0 {
		o.RevokeTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Tracer == nil {
		o.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if o.Sink == "" {
		o.Sink = "metrics"
	}
	return o
}

// newSelfMetrics builds the member's own metrics, labelled by its sink.
func (c *Consumer) newSelfMetrics(sink prometheus.Labels) {
	c.commits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "accesslog_exporter_commits_total", ConstLabels: sink,
		Help: "Offset commits that succeeded.",
	})
	c.commitErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "accesslog_exporter_commit_errors_total", ConstLabels: sink,
		Help: "Offset commits that failed, wholly or for some partitions.",
	})
	c.rebalances = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_partition_events_total", ConstLabels: sink,
		Help: "Partitions assigned, revoked or lost by group rebalances.",
	}, []string{"event"})
	c.assigned = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "accesslog_exporter_assigned_partitions", ConstLabels: sink,
		Help: "Partitions this replica owns now.",
	})
	c.pauses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "accesslog_exporter_fetch_pauses_total", ConstLabels: sink,
		Help: "Times fetching paused because in-flight record bytes reached the bound (loki.max_inflight_bytes).",
	})
	c.info = prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "accesslog_exporter_kafka_consumer_info",
		Help:        "1 per consumer-group member of this process: which sink it feeds and which group it commits in (join with kafka_consumergroup_lag on consumergroup).",
		ConstLabels: prometheus.Labels{"sink": c.opts.Sink, "consumergroup": c.cfg.Group},
	})
	c.info.Set(1)
	c.fedRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "accesslog_exporter_fed_records_total", ConstLabels: sink,
		Help: "Records this member took from the fetch of the metrics member of the same process instead of fetching them itself.",
	})
	c.feedStops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_feed_stops_total", ConstLabels: sink,
		Help: "Times this member stopped taking a partition's records from the metrics member's fetch and fetched it itself again, by reason: behind (its sink is slow or down), leader_gone (the metrics member lost the partition), gap (the metrics member's records skipped the offset needed), quiet (no records from the metrics member for 5s: no traffic, or the metrics member is stuck).",
	}, []string{"reason"})
}

// Close releases the client; Run calls it on the way out, so only a
// consumer that never ran needs it. Safe to call more than once.
func (c *Consumer) Close() {
	c.cl.Close()
	c.stop()
}

// Client is the underlying client, for callers that share its connection
// (the embedded demo produces with its own client; tests inspect offsets).
func (c *Consumer) Client() *kgo.Client { return c.cl }

// Ready says whether the member has joined its group and had a fetch
// answered, and if not, why not: the /readyz explanation.
func (c *Consumer) Ready() (bool, string) {
	switch {
	case !c.joined.Load():
		why := fmt.Sprintf("waiting to join consumer group %q (brokers %v)", c.cfg.Group, c.cfg.Brokers)
		if err := c.dialErr.last(); err != "" {
			why += ": last connection failed: " + err
		}
		return false, why
	case !c.fetched.Load():
		return false, fmt.Sprintf("joined group %q, waiting for the first fetch", c.cfg.Group)
	}
	return true, fmt.Sprintf("joined group %q and fetching", c.cfg.Group)
}

// Run consumes until ctx ends, then finishes in-flight batches (bounded by
// ShutdownTimeout), commits, leaves the group and closes the client.
func (c *Consumer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i, q := range c.queues {
		p := c.opts.NewProcessor(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range q {
				topic, id, recs := b.Topic, b.Partition, b.Records
				p.Process(b)
				if c.opts.Lead != nil {
					// Offered once handled: the follower then finds what
					// was made of the records (the shared decodes) ready.
					c.opts.Lead.offer(topic, id, recs)
				}
			}
		}()
	}
	commitCtx, stopCommits := context.WithCancel(context.Background())
	commitsDone := make(chan struct{})
	go func() {
		defer close(commitsDone)
		c.commitLoop(commitCtx)
	}()

	err := c.poll(ctx)
	if c.opts.Lead != nil {
		c.opts.Lead.unlead(c.allParts()) // a follower must not wait for records no longer fetched
	}
	// One budget from here to the closed client; the leave gets its share
	// even when a sink never answers, so partitions move at once.
	end := time.Now().Add(c.opts.ShutdownTimeout)
	drainBy := end.Add(-min(c.opts.ShutdownTimeout/4, 5*time.Second))

	for _, q := range c.queues {
		close(q)
	}
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()
	deadline := time.NewTimer(time.Until(drainBy))
	defer deadline.Stop()
	select {
	case <-workersDone:
		// Holders beyond the processor (Loki) finish after the workers:
		// have them send now and wait for their acknowledgements.
		if c.opts.Flush != nil {
			c.opts.Flush()
		}
		for _, p := range c.allParts() {
			select {
			case <-p.drained():
				continue
			case <-deadline.C:
			}
			c.log.Warn("shutdown: batches not acknowledged in time; committing what is; the rest is read again after restart", "sink", c.opts.Sink, "timeout", c.opts.ShutdownTimeout, "topic", p.topic, "partition", p.id, "outstanding", p.outstanding())
			break
		}
	case <-deadline.C:
		c.log.Warn("shutdown: in-flight batches not done in time; committing what is done", "sink", c.opts.Sink, "timeout", c.opts.ShutdownTimeout)
	}
	stopCommits()
	<-commitsDone
	finalCtx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	c.commit(finalCtx, c.snapshot(nil))
	// Forget every partition before leaving: the leave's revoke callback
	// must not wait for acknowledgements a second time (the final commit
	// above has what there is), or the leave misses its budget.
	c.detachAll()
	c.cl.AllowRebalance()
	if lerr := c.cl.LeaveGroupContext(finalCtx); lerr != nil && !errors.Is(lerr, context.Canceled) {
		c.log.Warn("leaving consumer group", "sink", c.opts.Sink, "group", c.cfg.Group, "err", lerr)
		c.stop() // the budget is spent: do not let Close wait on the group
	}
	c.Close()
	return err
}

func (c *Consumer) poll(ctx context.Context) error {
	if c.opts.Follow != nil {
		c.opts.Follow.setWake(c.wake.wake)
		defer c.opts.Follow.setWake(nil)
	}
	for {
		pctx := ctx
		if c.opts.Follow != nil {
			var d time.Duration
			if c.followingAny() {
				d = c.opts.Follow.quiet / 2 // a quiet followed partition is noticed
			}
			pctx = c.wake.arm(ctx, d)
		}
		fs := c.cl.PollRecords(pctx, 10000)
		c.wake.disarm()
		if ctx.Err() != nil {
			c.cl.AllowRebalance()
			return nil
		}
		if fs.IsClientClosed() {
			return errors.New("kafka: client closed")
		}
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return // shutdown, or the feed woke the poll
			}
			c.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		})
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) == 0 {
				return
			}
			part := c.partition(ftp.Topic, ftp.Partition)
			if part == nil {
				return // revoked between fetch and now
			}
			if c.opts.Follow != nil {
				c.own(ctx, part, ftp.Records)
				return
			}
			c.handOut(ctx, part, ftp.Records)
		})
		if c.opts.Follow != nil {
			c.takeFed(ctx)
		}
		c.cl.AllowRebalance()
	}
}

// handOut gives recs to the partition's worker as one batch.
func (c *Consumer) handOut(ctx context.Context, part *partition, recs []*kgo.Record) {
	b := part.begin(recs)
	c.begun(b)
	select {
	case c.queues[part.worker] <- b:
	case <-ctx.Done():
		part.abandon(b)
		c.releasedBytes(b)
	}
}

// own hands out a follower's own fetch of a partition, and follows the
// leader from there when it is in step. Records of a partition it follows
// (fetched before the pause took effect) or before what it handed out
// already are left: each offset is handed out once a session.
func (c *Consumer) own(ctx context.Context, part *partition, recs []*kgo.Record) {
	k := tp{part.topic, part.id}
	c.pauseMu.Lock()
	followed := c.following[k]
	c.pauseMu.Unlock()
	if followed {
		return
	}
	recs = part.after(recs)
	if len(recs) == 0 {
		return
	}
	c.handOut(ctx, part, recs)
	if ctx.Err() != nil {
		return
	}
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	if c.paused || !c.opts.Follow.follow(k, recs[len(recs)-1].Offset+1) {
		return
	}
	c.following[k] = true
	c.cl.PauseFetchPartitions(map[string][]int32{k.topic: {k.part}})
}

// takeFed hands out what the feed has for the partitions this member
// follows, and fetches itself again those it stopped following. It runs
// between a poll and AllowRebalance, so no revoke runs meanwhile.
func (c *Consumer) takeFed(ctx context.Context) {
	if c.Paused() {
		return // at the in-flight bound: the feed waits, and stops following past its budget
	}
	c.fromFeed = c.opts.Follow.take(c.fromFeed[:0], time.Now())
	for i := range c.fromFeed {
		f := &c.fromFeed[i]
		part := c.partition(f.k.topic, f.k.part)
		switch {
		case part == nil:
		case f.resume:
			c.resume(f.k, f.at, f.reason)
		case ctx.Err() == nil:
			if recs := part.after(f.recs); len(recs) > 0 {
				c.fedRecords.Add(float64(len(recs)))
				c.handOut(ctx, part, recs)
			}
		}
		*f = fed{}
	}
}

func (c *Consumer) followingAny() bool {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	return len(c.following) > 0
}

// resume fetches a partition itself again, from at: its fetch position
// stayed where it paused.
func (c *Consumer) resume(k tp, at int64, reason string) {
	c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{k.topic: {k.part: {Epoch: -1, Offset: at}}})
	c.pauseMu.Lock()
	delete(c.following, k)
	if !c.paused {
		c.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.part}})
	}
	c.pauseMu.Unlock()
	c.feedStops.WithLabelValues(reason).Inc()
	c.log.Debug("fetching a partition itself again", "topic", k.topic, "partition", k.part, "offset", at, "reason", reason)
}

// unfollow forgets that revoked or lost partitions were followed: their
// own fetch is resumed, for whoever is assigned them next in this client.
func (c *Consumer) unfollow(parts []*partition) {
	if c.opts.Follow == nil {
		return
	}
	keys := make([]tp, 0, len(parts))
	for _, p := range parts {
		keys = append(keys, tp{p.topic, p.id})
	}
	c.unfollowKeys(keys)
}

func (c *Consumer) unfollowKeys(keys []tp) {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	for _, k := range keys {
		c.opts.Follow.unfollow(k)
		if c.following[k] {
			delete(c.following, k)
			if !c.paused {
				c.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.part}})
			}
		}
	}
}

func (c *Consumer) partition(topic string, p int32) *partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parts[tp{topic, p}]
}

// assign adds the assigned partitions, each to the worker that has the
// fewest, in topic and partition order, and says how many there were. The
// workers stay balanced whatever the assignment (a hash of the partition can
// put most of them on one), and two members of a process that are assigned
// the same partitions map them alike, so each of the log member's workers
// goes at the pace of the metrics member's worker it takes decodes from.
// Called with c.mu held.
func (c *Consumer) assign(assigned map[string][]int32) int {
	load := make([]int, len(c.queues))
	for _, p := range c.parts {
		load[p.worker]++
	}
	var add []tp
	for topic, ps := range assigned {
		for _, p := range ps {
			add = append(add, tp{topic, p})
		}
	}
	slices.SortFunc(add, func(a, b tp) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.part, b.part))
	})
	for _, k := range add {
		if old, ok := c.parts[k]; ok {
			load[old.worker]-- // assigned again without a revoke: replaced
		}
		part := newPartition(k.topic, k.part, c.releasedBytes)
		part.worker = slices.Index(load, slices.Min(load))
		load[part.worker]++
		c.parts[k] = part
	}
	return len(add)
}

// owned lists the partitions this member holds now.
func (c *Consumer) owned() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int32, 0, len(c.parts))
	for k := range c.parts {
		out = append(out, k.part)
	}
	return out
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	if c.opts.Follow != nil {
		// Assigned anew: its position is the group's, not what was followed.
		var keys []tp
		for topic, ps := range assigned {
			for _, p := range ps {
				keys = append(keys, tp{topic, p})
			}
		}
		c.unfollowKeys(keys)
	}
	c.mu.Lock()
	n := c.assign(assigned)
	c.assigned.Set(float64(len(c.parts)))
	c.mu.Unlock()
	// Lock order: pauseMu before mu (begun holds pauseMu and lists parts).
	c.pauseMu.Lock()
	if c.paused {
		// New partitions wait with the others until room is freed.
		c.cl.PauseFetchPartitions(assigned)
	}
	c.pauseMu.Unlock()
	if c.opts.Lead != nil {
		c.opts.Lead.lead(assigned)
	}
	c.rebalances.WithLabelValues("assigned").Add(float64(n))
	c.joined.Store(true)
	c.log.Info("partitions assigned", "partitions", assigned)
}

// onRevoked runs while the group is still ours for these partitions (the
// cooperative protocol revokes before reassigning), so it waits for their
// in-flight batches and commits them: the next owner starts exactly where we
// stopped.
func (c *Consumer) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	parts := c.detach(revoked, "revoked")
	if len(parts) == 0 {
		return
	}
	if c.opts.Flush != nil {
		c.opts.Flush()
	}
	wctx, cancel := context.WithTimeout(ctx, c.opts.RevokeTimeout)
	defer cancel()
	for _, p := range parts {
		select {
		case <-p.drained():
		case <-wctx.Done():
			c.log.Warn("revoke: in-flight batches not done in time; the new owner will re-read them", "topic", p.topic, "partition", p.id, "outstanding", p.outstanding())
		}
	}
	cctx, cancel2 := context.WithTimeout(ctx, c.opts.RevokeTimeout)
	defer cancel2()
	c.commit(cctx, c.snapshot(parts))
	c.log.Info("partitions revoked", "partitions", revoked)
}

// onLost drops state without committing: the group no longer knows us, so a
// commit would fail, and another member may already own the partitions.
func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.detach(lost, "lost")
	c.log.Warn("partitions lost", "partitions", lost)
}

func (c *Consumer) detach(m map[string][]int32, event string) []*partition {
	parts := c.detachLocked(m, event)
	if c.opts.Lead != nil {
		c.opts.Lead.unlead(parts)
	}
	c.unfollow(parts)
	return parts
}

func (c *Consumer) detachLocked(m map[string][]int32, event string) []*partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*partition
	for topic, ps := range m {
		for _, p := range ps {
			if part, ok := c.parts[tp{topic, p}]; ok {
				out = append(out, part)
				delete(c.parts, tp{topic, p})
			}
		}
	}
	c.assigned.Set(float64(len(c.parts)))
	c.rebalances.WithLabelValues(event).Add(float64(len(out)))
	return out
}

// detachAll forgets every partition without counting it as revoked.
func (c *Consumer) detachAll() {
	parts := c.allParts()
	c.mu.Lock()
	clear(c.parts)
	c.assigned.Set(0)
	c.mu.Unlock()
	if c.opts.Lead != nil {
		c.opts.Lead.unlead(parts)
	}
	c.unfollow(parts)
}

func (c *Consumer) allParts() []*partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*partition, 0, len(c.parts))
	for _, p := range c.parts {
		out = append(out, p)
	}
	return out
}

// begun counts a batch's bytes as in flight and pauses fetching at the bound.
func (c *Consumer) begun(b *Batch) {
	if n := c.inflight.Add(b.bytes); c.opts.MaxInflightBytes > 0 && n >= c.opts.MaxInflightBytes {
		c.pauseMu.Lock()
		if !c.paused && c.inflight.Load() >= c.opts.MaxInflightBytes {
			c.paused = true
			c.pauses.Inc()
			owned := map[string][]int32{}
			for _, p := range c.allParts() {
				owned[p.topic] = append(owned[p.topic], p.id)
			}
			c.cl.PauseFetchPartitions(owned)
			c.log.Info("in-flight bytes at the bound; fetching paused until acknowledgements free room", "inflight_bytes", n, "bound", c.opts.MaxInflightBytes)
		}
		c.pauseMu.Unlock()
	}
}

// releasedBytes is called when every holder has released b (from any
// goroutine: a Loki sender, a worker) and resumes fetching below the bound.
// Pause and resume both re-check the count under pauseMu after changing
// it, so the last one to run leaves the right state.
func (c *Consumer) releasedBytes(b *Batch) {
	n := c.inflight.Add(-b.bytes)
	if c.opts.MaxInflightBytes <= 0 || n >= c.opts.MaxInflightBytes {
		return
	}
	c.pauseMu.Lock()
	if c.paused && c.inflight.Load() < c.opts.MaxInflightBytes {
		c.paused = false
		resume := c.cl.PauseFetchPartitions(nil)
		for topic, ps := range resume {
			// A followed partition stays paused: the feed has its records.
			resume[topic] = slices.DeleteFunc(ps, func(p int32) bool { return c.following[tp{topic, p}] })
		}
		c.cl.ResumeFetchPartitions(resume)
		c.log.Debug("fetching resumed", "inflight_bytes", n)
		if c.opts.Follow != nil {
			c.wake.wake() // the feed's records wait for the poll
		}
	}
	c.pauseMu.Unlock()
}

// Paused says whether fetching is paused at the in-flight bound.
func (c *Consumer) Paused() bool {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	return c.paused
}

// InflightBytes are the record bytes handed out and not yet released.
func (c *Consumer) InflightBytes() int64 { return c.inflight.Load() }

// flowCollector reports, at scrape time, how much is waiting: per
// partition the offsets fetched but not yet committable, and the bytes in
// flight and whether fetching is paused.
type flowCollector struct{ c *Consumer }

// flowDescs are the flow series' descriptions, with the member's sink as
// a constant label.
type flowDescs struct{ pending, inflight, paused *prometheus.Desc }

func newFlowDescs(sink prometheus.Labels) flowDescs {
	return flowDescs{
		pending: prometheus.NewDesc("accesslog_exporter_partition_pending_offsets",
			"Offsets fetched but not yet committable (handled, and acknowledged when the sink acknowledges), per owned partition: the committable-versus-fetched gap.",
			[]string{"topic", "partition"}, sink),
		inflight: prometheus.NewDesc("accesslog_exporter_inflight_record_bytes",
			"Record bytes fetched and not yet released by every holder; fetching pauses at loki.max_inflight_bytes.", nil, sink),
		paused: prometheus.NewDesc("accesslog_exporter_fetch_paused",
			"1 while fetching is paused at the in-flight bound.", nil, sink),
	}
}

func (f flowCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- f.c.flow.pending
	ch <- f.c.flow.inflight
	ch <- f.c.flow.paused
}

func (f flowCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range f.c.allParts() {
		ch <- prometheus.MustNewConstMetric(f.c.flow.pending, prometheus.GaugeValue, float64(p.pending()), p.topic, strconv.Itoa(int(p.id)))
	}
	ch <- prometheus.MustNewConstMetric(f.c.flow.inflight, prometheus.GaugeValue, float64(f.c.inflight.Load()))
	paused := 0.0
	if f.c.Paused() {
		paused = 1
	}
	ch <- prometheus.MustNewConstMetric(f.c.flow.paused, prometheus.GaugeValue, paused)
}

func (c *Consumer) commitLoop(ctx context.Context) {
	interval := c.cfg.CommitInterval
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var h held
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			offs := c.snapshot(nil)
			if c.opts.Scraped != nil {
				gathered, regular := c.opts.Scraped()
				offs = c.stillAhead(h.next(time.Now(), offs, gathered, regular))
			}
			cctx, cancel := context.WithTimeout(ctx, interval+10*time.Second)
			c.commit(cctx, offs)
			cancel()
		}
	}
}

// stillAhead keeps the offsets of partitions still owned and past their
// last commit: a held snapshot may be older than a revocation's commit, and
// committing it would move the group back.
func (c *Consumer) stillAhead(offs map[*partition]kgo.EpochOffset) map[*partition]kgo.EpochOffset {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, o := range offs {
		p.mu.Lock()
		behind := o.Offset <= p.committed
		p.mu.Unlock()
		if behind || c.parts[tp{p.topic, p.id}] != p {
			delete(offs, p)
		}
	}
	return offs
}

// snapshot collects the committable offsets of parts, or of every owned
// partition when parts is nil.
func (c *Consumer) snapshot(parts []*partition) map[*partition]kgo.EpochOffset {
	if parts == nil {
		c.mu.Lock()
		for _, p := range c.parts {
			parts = append(parts, p)
		}
		c.mu.Unlock()
	}
	out := map[*partition]kgo.EpochOffset{}
	for _, p := range parts {
		if o, ok := p.committable(); ok {
			out[p] = o
		}
	}
	return out
}

func (c *Consumer) commit(ctx context.Context, offsets map[*partition]kgo.EpochOffset) {
	if len(offsets) == 0 {
		return
	}
	req := map[string]map[int32]kgo.EpochOffset{}
	for p, o := range offsets {
		if req[p.topic] == nil {
			req[p.topic] = map[int32]kgo.EpochOffset{}
		}
		req[p.topic][p.id] = o
	}
	ctx, span := c.tracer.Start(ctx, "kafka.commit", trace.WithAttributes(
		attribute.String("messaging.consumer.group.name", c.cfg.Group),
		attribute.Int("partitions", len(offsets))))
	defer span.End()
	var failed bool
	start := time.Now()
	c.cl.CommitOffsetsSync(ctx, req, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			failed = true
			c.log.Warn("offset commit failed", "err", err)
			return
		}
		for _, t := range resp.Topics {
			for _, rp := range t.Partitions {
				if rp.ErrorCode != 0 {
					failed = true
					c.log.Warn("offset commit failed", "topic", t.Topic, "partition", rp.Partition, "code", rp.ErrorCode)
					continue
				}
				for p, o := range offsets {
					if p.topic == t.Topic && p.id == rp.Partition {
						p.markCommitted(o.Offset)
					}
				}
			}
		}
	})
	if failed {
		c.commitErrors.Inc()
		span.SetStatus(codes.Error, "offset commit failed")
		c.opts.Status.Report(time.Since(start), errCommitFailed)
	} else {
		c.commits.Inc()
		c.opts.Status.Report(time.Since(start), nil)
	}
}

var errCommitFailed = errors.New("offset commit failed")

// fetchSeen marks the first answered fetch, for readiness: an empty topic
// returns no records, yet the path to Kafka works.
// dialError keeps the last failed broker connection, so that /readyz says
// why the group is not joined (a wrong kafka.tls.ca_file, say) instead of
// only that it is not; a connection that succeeds clears it.
type dialError struct{ err atomic.Pointer[string] }

func (d *dialError) OnBrokerConnect(m kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		d.err.Store(nil)
		return
	}
	msg := fmt.Sprintf("%s:%d: %v", m.Host, m.Port, err)
	d.err.Store(&msg)
}

func (d *dialError) last() string {
	if p := d.err.Load(); p != nil {
		return *p
	}
	return ""
}

type fetchSeen struct{ seen *atomic.Bool }

func (f fetchSeen) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil && key == int16(kmsg.Fetch) && !f.seen.Load() {
		f.seen.Store(true)
	}
}
