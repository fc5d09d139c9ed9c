// Package pipeline is the glue: Kafka records are decoded, parsed and
// counted, then their offsets are committed; it is the only package that
// knows all the others.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/component"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafkahealth"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/telemetry"
)

// Options are the run's settings that come from flags, not the file.
type Options struct {
	Web           *web.FlagConfig
	TelemetryPath string
	EnablePprof   bool
	Version       string
	Logger        *slog.Logger
	// KafkaOpts are extra client options (tests shorten heartbeats).
	KafkaOpts []kgo.Opt
	// ConfigFile is re-read on a reload (SIGHUP, POST /-/reload); empty
	// means built-in defaults.
	ConfigFile string
	// Override re-applies command-line overrides to a reloaded config.
	Override func(*config.Config) error
	// Reloads delivers reload requests (main sends one per SIGHUP).
	Reloads <-chan struct{}
	// EnableLifecycle serves POST /-/reload, as Prometheus's
	// --web.enable-lifecycle does.
	EnableLifecycle bool
	// ShutdownTimeout is the whole shutdown after ctx ends (every member
	// waits, commits and leaves its group within it). Default 30s.
	ShutdownTimeout time.Duration
	// ScrapeGrace is how long, within ShutdownTimeout, /metrics stays up
	// after the metrics member's final commit waiting for one scrape of the
	// final counts (--web.shutdown-grace); 0 stops serving at once.
	ScrapeGrace time.Duration
	// panicOn, set by tests, makes handling a record panic when it returns
	// true: the containment of defects in the per-record path.
	panicOn func(value []byte) bool
	// SpanProcessors receive the exporter's spans besides the OTLP exporter
	// (tests record them in memory).
	SpanProcessors []sdktrace.SpanProcessor
	// HTTPLimits bound the HTTP server (--web.max-requests and the like);
	// zero fields take server's defaults.
	HTTPLimits server.Limits
	// Started, when set, is called with the HTTP server once it listens
	// (tests and the embedded mode's banner need the real address).
	Started func(*server.Server)
}

// NewRegistry is a registry with the exporter's process-level metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("accesslog_exporter"),
	)
	return reg
}

// Run consumes until ctx ends, serving metrics over HTTP meanwhile, then
// shuts down: in-flight batches are finished and committed, the group is
// left, the server stops. It builds every component first and starts them
// only when all are built, so a bad config fails before anything starts
// and leaves nothing open.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p, err := build(ctx, cfg, opts)
	if p != nil {
		defer p.release()
	}
	if err != nil {
		return err
	}
	if opts.Started != nil {
		opts.Started(p.srv)
	}
	return p.supervise(ctx, cancel, opts)
}

// parts are the components of one run, built before any of them starts.
type parts struct {
	log     *slog.Logger
	reg     *prometheus.Registry
	l       *live
	self    *selfMetrics
	comps   *component.Set
	reloads *reloader
	kcfg    config.Kafka
	tracing *telemetry.Tracing
	tracer  trace.Tracer // nil when tracing is off: no span work at all
	members []*kafka.Consumer
	counter *kafka.Consumer // the metrics member, nil without one
	share   *shared         // nil unless both members run here
	lc      *loki.Client
	health  *kafkahealth.Poller
	pusher  *telemetry.Pusher
	srv     *server.Server
	started bool // supervise took over closing the components
}

// build constructs every component of cfg; on error what was built so far
// is closed by release.
func build(ctx context.Context, cfg *config.Config, opts Options) (*parts, error) {
	p := &parts{log: opts.Logger, reg: NewRegistry(), kcfg: cfg.Kafka}
	var err error
	if p.l, err = newLive(cfg, p.reg); err != nil {
		return p, err
	}
	if p.reloads, err = newReloader(opts.ConfigFile, opts.Override, cfg, p.l, p.reg, p.log); err != nil {
		return p, err
	}
	if p.self, err = newSelfMetrics(p.reg); err != nil {
		return p, err
	}
	// Every component reports its last cycle the same way
	// (accesslog_exporter_component_success and _duration_seconds).
	p.comps = component.NewSet()
	if err := p.reg.Register(p.comps); err != nil {
		return p, err
	}
	if p.tracing, err = telemetry.NewTracing(ctx, cfg.Tracing, opts.Version, p.comps.Component("tracing"), opts.SpanProcessors...); err != nil {
		return p, cfg.Errorf("tracing", "%v", err)
	}
	// With tracing off the processor gets no tracer and skips span work
	// altogether, so the hot path is what it was without tracing.
	if p.tracing.Enabled() {
		p.tracer = p.tracing.Tracer("github.com/accesslog-exporter/accesslog-exporter/exporter/pipeline")
	}
	if err := p.buildMembers(ctx, cfg, opts); err != nil {
		return p, err
	}
	if err := p.buildReporters(cfg); err != nil {
		return p, err
	}
	return p, p.buildServer(ctx, opts)
}

// buildMembers builds one consumer-group member per sink, and the log
// store's client for the log member.
func (p *parts) buildMembers(ctx context.Context, cfg *config.Config, opts Options) error {
	metricsOn, logsOn := cfg.Sinks()
	var feed *kafka.Feed
	if metricsOn && logsOn {
		// One fetch for both members while the log member keeps up.
		feed = kafka.NewFeed(0)
		var err error
		if p.share, err = newShared(p.reg); err != nil {
			return err
		}
		// Each member's fetch may be held by the broker up to the fetch
		// wait, on its own schedule: the metrics member may reach a batch
		// that much after the log member read it.
		p.share.wait += cfg.Kafka.FetchMaxWait
	}
	budget := opts.ShutdownTimeout
	if budget <= 0 {
		budget = 30 * time.Second
	}
	kafkaTracer := p.tracing.Tracer("github.com/accesslog-exporter/accesslog-exporter/exporter/kafka")
	if metricsOn {
		// Counted is done: this member never waits for the log store, so
		// metrics and alerts go on through a log-store outage.
		cons, err := kafka.New(p.kcfg, kafka.Options{
			Sink:   config.RoleMetrics,
			Status: p.comps.Component("kafka_metrics"),
			Tracer: kafkaTracer,
			NewProcessor: func(int) kafka.Processor {
				return withHooks(newProcessor(p.l, p.self, p.tracer, nil, p.share), p.log, opts)
			},
			// The server is built after the members, before any runs.
			Scraped:         func() (time.Time, bool) { return p.srv.Scraped() },
			Lead:            feed,
			Logger:          p.log,
			Registerer:      p.reg,
			ExtraOpts:       opts.KafkaOpts,
			ShutdownTimeout: budget,
		})
		if err != nil {
			return err
		}
		p.members = append(p.members, cons)
		p.counter = cons
	}
	if !logsOn {
		return nil
	}
	lopts := loki.Options{Logger: p.log, Registerer: p.reg, UserAgent: "accesslog-exporter/" + opts.Version, Status: p.comps.Component("loki")}
	if p.tracing.Enabled() {
		lopts.Tracer = p.tracing.Tracer("github.com/accesslog-exporter/accesslog-exporter/exporter/loki")
	}
	lc, err := loki.New(cfg.Loki, lopts)
	if err != nil {
		return cfg.Errorf("loki", "%v", err)
	}
	p.lc = lc
	lcfg := p.kcfg
	lcfg.Group = cfg.LokiGroup()
	// A deployment that ran one group for both sinks starts the log
	// group where that group stopped (docs/delivery.md, upgrading).
	if n, err := kafka.SeedGroup(ctx, p.kcfg, p.kcfg.Group, lcfg.Group, opts.KafkaOpts...); err != nil {
		return err
	} else if n > 0 {
		p.log.Info("log group had no offsets; started it at the committed offsets of the metrics group", "group", lcfg.Group, "from", p.kcfg.Group, "partitions", n)
	}
	// An offset is committed only once the store has every line up to
	// it: each worker's appender retains the Kafka batch until
	// acknowledged, and fetching pauses while too much waits.
	cons, err := kafka.New(lcfg, kafka.Options{
		Sink:   config.RoleLogs,
		Status: p.comps.Component("kafka_logs"),
		Tracer: kafkaTracer,
		NewProcessor: func(int) kafka.Processor {
			return withHooks(newProcessor(p.l, p.self, p.tracer, lc.NewAppender(), p.share), p.log, opts)
		},
		Logger:           p.log,
		Registerer:       p.reg,
		ExtraOpts:        opts.KafkaOpts,
		MaxInflightBytes: int64(cfg.Loki.MaxInflightBytes),
		Flush:            lc.Flush,
		Follow:           feed,
		ShutdownTimeout:  min(budget, cfg.Loki.ShutdownTimeout),
		RevokeTimeout:    cfg.Loki.ShutdownTimeout,
	})
	if err != nil {
		return err
	}
	p.members = append(p.members, cons)
	return nil
}

// buildReporters builds the health poller and the pusher.
func (p *parts) buildReporters(cfg *config.Config) error {
	// Every replica polls cluster health; the series do not depend on the
	// replica, and the shipped rules take max over replicas
	// (docs/kafka-health.md).
	var gatherer prometheus.Gatherer = p.reg
	if cfg.Health.Enabled {
		h, err := kafkahealth.New(p.kcfg, cfg.Health, kafkahealth.Options{Logger: p.log, Status: p.comps.Component("kafka_health")})
		if err != nil {
			return cfg.Errorf("health", "%v", err)
		}
		p.health = h
		// The cluster series are encoded once per poll and served beside
		// the registry: through it, a large cluster costs half a second a scrape.
		if err := p.reg.Register(h.Self()); err != nil {
			return err
		}
		gatherer = prometheus.Gatherers{p.reg, h.ClusterGatherer()}
	}
	if cfg.Push.URL != "" {
		var err error
		if p.pusher, err = telemetry.NewPusher(cfg.Push, gatherer, p.reg, p.log, p.comps.Component("push")); err != nil {
			return cfg.Errorf("push", "%v", err)
		}
	}
	return nil
}

// buildServer builds the HTTP server and binds its addresses.
func (p *parts) buildServer(ctx context.Context, opts Options) error {
	var expositions []server.Exposition
	if p.health != nil {
		expositions = append(expositions, p.health)
	}
	p.srv = server.New(server.Config{
		Flags:         opts.Web,
		TelemetryPath: opts.TelemetryPath,
		EnablePprof:   opts.EnablePprof,
		Version:       opts.Version,
		Reload:        lifecycle(opts.EnableLifecycle, p.reloads.Reload),
		Expositions:   expositions,
		Limits:        opts.HTTPLimits,
	}, p.reg, allReady(ctx, p.members), p.log)
	return p.srv.Listen(ctx)
}

// release closes what the run opened: on a setup error every component
// built, which never ran; always, last, tracing, so that spans still
// buffered are sent after the final commit.
func (p *parts) release() {
	if !p.started {
		for _, m := range p.members {
			m.Close()
		}
		if p.health != nil {
			p.health.Close()
		}
		if p.lc != nil {
			p.lc.Close()
		}
	}
	if p.tracing != nil {
		if err := p.tracing.Shutdown(5 * time.Second); err != nil {
			p.log.Warn("tracing shutdown", "err", err)
		}
	}
}

// supervise runs every component until ctx ends or a consumer member or the
// server stops (which cancels the rest: a restart rejoins both groups), and
// returns their errors joined. Each component closes what it opened on its
// way out; the log client is closed once the log member has waited for
// acknowledgements and committed: what it still holds is abandoned,
// uncommitted, and read again.
func (p *parts) supervise(ctx context.Context, cancel context.CancelFunc, opts Options) error {
	p.started = true
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []error
	goRun := func(run func() error, stopsAll bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := run()
			if stopsAll {
				cancel()
			}
			if err != nil {
				mu.Lock()
				all = append(all, err)
				mu.Unlock()
			}
		}()
	}
	if opts.Reloads != nil {
		goRun(func() error { p.reloadOn(ctx, opts.Reloads); return nil }, false)
	}
	if p.health != nil {
		goRun(func() error { return p.health.Run(ctx) }, false)
	}
	if p.pusher != nil {
		goRun(func() error { return p.pusher.Run(ctx) }, false)
	}
	if p.lc != nil {
		p.lc.Start()
	}
	var membersWG sync.WaitGroup
	counted := make(chan struct{}) // the metrics member has committed and left
	if p.counter == nil {
		close(counted)
	}
	for _, m := range p.members {
		membersWG.Add(1)
		goRun(func() error {
			defer membersWG.Done()
			if m == p.counter {
				defer close(counted)
			}
			return m.Run(ctx)
		}, true)
	}
	// The server outlives ctx: it stops once the members are done and the
	// final counts were scraped, or the grace is over.
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()
	srvDone := make(chan struct{})
	goRun(func() error { defer close(srvDone); return p.srv.Run(srvCtx) }, true)
	goRun(func() error {
		<-ctx.Done()
		p.lastScrape(time.Now().Add(shutdownBudget(opts)), opts.ScrapeGrace, counted, srvDone)
		membersWG.Wait()
		if p.lc != nil {
			p.lc.Close()
		}
		stopServer()
		return nil
	}, false)
	wg.Wait()
	return errors.Join(all...)
}

func shutdownBudget(opts Options) time.Duration {
	if opts.ShutdownTimeout <= 0 {
		return 30 * time.Second
	}
	return opts.ShutdownTimeout
}

// lastScrape waits, once the metrics member has made its final commit, for
// a scrape that gathered after it: counts made since the previous scrape
// are committed, so the next replica will not count them again, and only
// this process can still show them to Prometheus. It gives up after grace,
// at the shutdown deadline, when the server has stopped, and when no scrape
// is expected (see server.WaitScrape).
func (p *parts) lastScrape(deadline time.Time, grace time.Duration, counted, srvDone <-chan struct{}) {
	if grace <= 0 || p.counter == nil {
		return
	}
	select {
	case <-counted:
	case <-srvDone:
		return
	}
	since := time.Now()
	end := since.Add(grace)
	if deadline.Before(end) {
		end = deadline
	}
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	go func() {
		select {
		case <-srvDone:
			cancel()
		case <-ctx.Done():
		}
	}()
	if p.srv.WaitScrape(ctx, since) {
		p.log.Info("shutdown: the final counts were scraped", "after", time.Since(since).Round(time.Millisecond))
		return
	}
	if ctx.Err() != nil {
		p.log.Warn("shutdown: no scrape of the final counts within the grace; what was counted since the last scrape is not seen by Prometheus", "grace", grace)
		return
	}
	p.log.Info("shutdown: no scrape of the final counts expected (nothing scrapes this process regularly)")
}

// reloadOn reloads the file on every signal until ctx ends.
func (p *parts) reloadOn(ctx context.Context, reloads <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-reloads:
			_ = p.reloads.Reload() // logged and reported by the reloader
		}
	}
}

func lifecycle(on bool, reload func() error) func() error {
	if on {
		return reload
	}
	return nil
}

// allReady is ready when every member is: each has joined its group and
// had a fetch answered; never once ctx (the run) has ended, while the
// server still answers during the shutdown.
func allReady(ctx context.Context, members []*kafka.Consumer) server.Readiness {
	return server.ReadinessFunc(func() (bool, string) {
		if ctx.Err() != nil {
			return false, "shutting down"
		}
		ok, whys := true, make([]string, 0, len(members))
		for _, m := range members {
			r, why := m.Ready()
			ok = ok && r
			whys = append(whys, why)
		}
		return ok, strings.Join(whys, "; ")
	})
}

// newProcessor builds one worker's processor; tracer is nil when tracing is
// off. With app nil it feeds the metrics (the metrics member); with an
// appender it decodes what the log store needs and forwards (the log
// member).
//
// share, nil when the process runs one sink, carries the metrics member's
// decodes to the log member.
func newProcessor(l *live, self *selfMetrics, tracer trace.Tracer, app *loki.Appender, share *shared) *processor {
	p := &processor{h: newHandler(l.load(), self), live: l, tracer: tracer, app: app, share: share, log: slog.New(slog.DiscardHandler)}
	if share != nil && app != nil {
		p.timer = time.NewTimer(time.Hour)
		p.timer.Stop()
	}
	return p
}

func withHooks(p *processor, log *slog.Logger, opts Options) *processor {
	p.log, p.panicOn = log, opts.panicOn
	return p
}

// processor adapts a handler to the consumer's batches: counting them, or
// handing every line to the worker's log-store appender.
type processor struct {
	h      *handler
	live   *live
	tracer trace.Tracer
	app    *loki.Appender
	line   loki.Line
	share  *shared
	view   sharedView  // the log member's lines taken from share
	timer  *time.Timer // the log member's wait for the metrics member
	// panicked says the last count panicked: its record is not shared.
	panicked bool
	log      *slog.Logger      // reports contained panics
	panicOn  func([]byte) bool // test hook, see Options
}

func (p *processor) Process(b *kafka.Batch) {
	if r := p.live.load(); r != p.h.rules {
		p.h.use(r)
	}
	var parse trace.Span
	if p.tracer != nil {
		parse = p.startSpans(b)
	}
	failed := 0
	now := time.Now()
	if p.app == nil {
		failed = p.countBatch(b, now)
	} else {
		failed = p.forwardBatch(b)
	}
	if parse != nil {
		parse.SetAttributes(attribute.Int("lines", len(b.Records)), attribute.Int("lines.failed", failed))
		parse.End()
	}
	b.Release()
}

// countBatch counts b's records, sharing each decode with the log member,
// and returns how many failed.
func (p *processor) countBatch(b *kafka.Batch, now time.Time) (failed int) {
	w := p.share.begin(b)
	defer w.end()
	for _, r := range b.Records {
		p.panicked = false
		ok := p.count(b, r, now)
		if !ok {
			failed++
		}
		if w.p != nil && !p.panicked {
			logLine(&p.h.rec, r, !ok, &p.line)
			w.put(r, &p.line, &p.h.rec, p.h.rules)
		}
	}
	return failed
}

// forwardBatch hands b's lines to the log store, decoding those the
// metrics member has not, and returns how many failed.
func (p *processor) forwardBatch(b *kafka.Batch) (failed int) {
	p.share.take(b, p.h.rules, &p.view, p.timer)
	hits := 0
	// The appender retains b for every batch its lines go into, so the
	// processor's own Release does not make b committable by itself.
	p.app.Append(b.Topic, b.Partition, b, func() {
		for i, r := range b.Records {
			if p.view.line(i, r, &p.line) {
				hits++
				if p.line.Unparsed {
					failed++
				}
				p.app.Add(&p.line)
				continue
			}
			ok := p.decode(b, r)
			if !ok {
				failed++
			}
			p.forward(r, !ok)
		}
	})
	if p.share != nil {
		p.share.hit.Add(float64(hits))
		p.share.miss.Add(float64(len(b.Records) - hits))
	}
	return failed
}

// count decodes, parses and counts one record, and says whether it parsed.
// A panic on the way (a defect, never bad input alone) is contained to the
// record: it is counted as failed with reason internal_error, and the
// pipeline goes on, so one line can never crash-loop the exporter.
func (p *processor) count(b *kafka.Batch, r *kgo.Record, now time.Time) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			p.h.self.failed.Inc()
			p.h.self.internal.Inc()
			p.contained(b, r, v)
			ok, p.panicked = false, true
		}
	}()
	if p.panicOn != nil && p.panicOn(r.Value) {
		panic("test: injected panic")
	}
	return p.h.handle(r.Value, now) == nil
}

// decode reads what the log store needs (the line, its time, the stream
// labels), counting nothing: the metrics member counts. A panic is
// contained as in count, and the record is forwarded as it came.
func (p *processor) decode(b *kafka.Batch, r *kgo.Record) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			p.h.rec = accesslog.Record{} // half-filled: forward the raw value
			p.contained(b, r, v)
			ok = false
		}
	}()
	if p.panicOn != nil && p.panicOn(r.Value) {
		panic("test: injected panic")
	}
	return p.h.decode(r.Value) == nil
}

// contained logs a contained panic, at most once a minute per process:
// a poison line repeated at line rate must not flood the log.
func (p *processor) contained(b *kafka.Batch, r *kgo.Record, v any) {
	if n, ok := p.h.self.panics.allow(time.Now()); ok {
		p.log.Error("internal error handling a record; counted as failed (reason internal_error) and forwarded as it came",
			"panic", fmt.Sprint(v), "topic", b.Topic, "partition", b.Partition, "offset", r.Offset,
			"suppressed_since_last", n, "stack", string(debug.Stack()))
	}
}

// startSpans starts the batch's trace: a root span that lasts until the
// batch is committable (every line counted and, with Loki, acknowledged),
// and its parse child, which it returns.
func (p *processor) startSpans(b *kafka.Batch) trace.Span {
	ctx, span := p.tracer.Start(context.Background(), "kafka.batch", trace.WithAttributes(
		attribute.String("messaging.destination.name", b.Topic),
		attribute.Int("messaging.destination.partition.id", int(b.Partition)),
		attribute.Int64("offset.first", b.Records[0].Offset),
		attribute.Int64("offset.last", b.Records[len(b.Records)-1].Offset),
		attribute.Int("records", len(b.Records))))
	if span.IsRecording() {
		b.SetSpanContext(span.SpanContext())
		b.OnDone(func() { span.AddEvent("acknowledged"); span.End() })
	} else {
		span.End()
	}
	_, parse := p.tracer.Start(ctx, "parse")
	return parse
}

// forward hands the record's line to Loki. The timestamp is the line's own
// time, else Filebeat's @timestamp, else the Kafka record time: all three
// are the same when the record is read again after a restart, so a re-sent
// line keeps its place in the stream (stores that do not fold duplicates,
// VictoriaLogs and Loki with stream sharding, keep both: docs/delivery.md).
func (p *processor) forward(r *kgo.Record, unparsed bool) {
	logLine(&p.h.rec, r, unparsed, &p.line)
	p.app.Add(&p.line)
}

// logLine fills l with what the log store gets for r, decoded as rec.
func logLine(rec *accesslog.Record, r *kgo.Record, unparsed bool, l *loki.Line) {
	l.Line = rec.Line
	if l.Line == nil && !rec.Enveloped {
		l.Line = r.Value // not even decoded: forward the record as it is
	}
	l.Time = forwardTime(rec, r)
	l.Host, l.VHost, l.TraceID = rec.Host, rec.VHost, rec.TraceID
	l.Unparsed = unparsed
	l.Offset = r.Offset
}

// forwardTime is the time a line is stored under (see forward).
func forwardTime(rec *accesslog.Record, r *kgo.Record) time.Time {
	switch {
	case !rec.Time.IsZero():
		return rec.Time
	case !rec.Timestamp.IsZero():
		return rec.Timestamp
	default:
		return r.Timestamp
	}
}
