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
	// Embedded starts an in-process 3-broker Kafka fed by the traffic
	// generator at EmbeddedRate lines/s, and consumes from it.
	Embedded     bool
	EmbeddedRate float64
	Version      string
	Logger       *slog.Logger
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
// left, the server stops. A bad config fails before anything starts.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := NewRegistry()
	l, err := newLive(cfg, reg)
	if err != nil {
		return err
	}
	reloads, err := newReloader(opts.ConfigFile, opts.Override, cfg, l, reg, log)
	if err != nil {
		return err
	}
	self, err := newSelfMetrics(reg)
	if err != nil {
		return err
	}
	// Every component reports its last cycle the same way
	// (accesslog_exporter_component_success and _duration_seconds).
	components := component.NewSet()
	if err := reg.Register(components); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	kcfg := cfg.Kafka
	if opts.Embedded {
		emb, err := startEmbedded(ctx, kcfg.Topics[0], opts.EmbeddedRate, log)
		if err != nil {
			return err
		}
		defer emb.close()
		kcfg.Brokers = emb.brokers
		if cfg.Loki.URL == "" && len(cfg.Roles) == 0 {
			// The demo shows both paths, each with its own group.
			url, err := emb.startSink()
			if err != nil {
				return err
			}
			demo := *cfg
			demo.Loki.URL = url
			cfg = &demo
		}
		wg.Add(1)
		go func() { defer wg.Done(); emb.generate(ctx) }()
	}

	tracing, err := telemetry.NewTracing(ctx, cfg.Tracing, opts.Version, components.Component("tracing"), opts.SpanProcessors...)
	if err != nil {
		return cfg.Errorf("tracing", "%v", err)
	}
	// Spans still buffered are sent on the way out, after the final commit.
	defer func() {
		if err := tracing.Shutdown(5 * time.Second); err != nil {
			log.Warn("tracing shutdown", "err", err)
		}
	}()
	// With tracing off the processor gets no tracer and skips span work
	// altogether, so the hot path is what it was without tracing.
	var tracer trace.Tracer
	if tracing.Enabled() {
		tracer = tracing.Tracer("github.com/accesslog-exporter/accesslog-exporter/exporter/pipeline")
	}
	metricsOn, logsOn := cfg.Sinks()
	budget := opts.ShutdownTimeout
	if budget <= 0 {
		budget = 30 * time.Second
	}
	var members []*kafka.Consumer
	closeMembers := func() {
		for _, m := range members {
			m.Close()
		}
	}
	if metricsOn {
		// Counted is done: this member never waits for the log store, so
		// metrics and alerts go on through a log-store outage.
		cons, err := kafka.New(kcfg, kafka.Options{
			Sink:            config.RoleMetrics,
			Status:          components.Component("kafka_metrics"),
			Tracer:          tracing.Tracer("github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"),
			NewProcessor:    func(int) kafka.Processor { return withHooks(newProcessor(l, self, tracer, nil), log, opts) },
			Logger:          log,
			Registerer:      reg,
			ExtraOpts:       opts.KafkaOpts,
			ShutdownTimeout: budget,
		})
		if err != nil {
			return err
		}
		members = append(members, cons)
	}
	var lc *loki.Client
	if logsOn {
		lopts := loki.Options{Logger: log, Registerer: reg, UserAgent: "accesslog-exporter/" + opts.Version, Status: components.Component("loki")}
		if tracing.Enabled() {
			lopts.Tracer = tracing.Tracer("github.com/accesslog-exporter/accesslog-exporter/exporter/loki")
		}
		lc, err = loki.New(cfg.Loki, lopts)
		if err != nil {
			closeMembers()
			return cfg.Errorf("loki", "%v", err)
		}
		lcfg := kcfg
		lcfg.Group = cfg.LokiGroup()
		// A deployment that ran one group for both sinks starts the log
		// group where that group stopped (docs/delivery.md, upgrading).
		if n, err := kafka.SeedGroup(ctx, kcfg, kcfg.Group, lcfg.Group, opts.KafkaOpts...); err != nil {
			closeMembers()
			return err
		} else if n > 0 {
			log.Info("log group had no offsets; started it at the committed offsets of the metrics group", "group", lcfg.Group, "from", kcfg.Group, "partitions", n)
		}
		// An offset is committed only once the store has every line up to
		// it: each worker's appender retains the Kafka batch until
		// acknowledged, and fetching pauses while too much waits.
		cons, err := kafka.New(lcfg, kafka.Options{
			Sink:   config.RoleLogs,
			Status: components.Component("kafka_logs"),
			Tracer: tracing.Tracer("github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"),
			NewProcessor: func(int) kafka.Processor {
				return withHooks(newProcessor(l, self, tracer, lc.NewAppender()), log, opts)
			},
			Logger:           log,
			Registerer:       reg,
			ExtraOpts:        opts.KafkaOpts,
			MaxInflightBytes: int64(cfg.Loki.MaxInflightBytes),
			Flush:            lc.Flush,
			ShutdownTimeout:  min(budget, cfg.Loki.ShutdownTimeout),
			RevokeTimeout:    cfg.Loki.ShutdownTimeout,
		})
		if err != nil {
			closeMembers()
			return err
		}
		members = append(members, cons)
		lc.Start()
	}
	// Every replica polls cluster health; the series do not depend on the
	// replica, and the shipped rules take max over replicas
	// (docs/kafka-health.md).
	var health *kafkahealth.Poller
	var gatherer prometheus.Gatherer = reg
	var expositions []server.Exposition
	if cfg.Health.Enabled {
		health, err = kafkahealth.New(kcfg, cfg.Health, kafkahealth.Options{Logger: log, Status: components.Component("kafka_health")})
		if err != nil {
			closeMembers()
			return cfg.Errorf("health", "%v", err)
		}
		// The cluster series are encoded once per poll and served beside
		// the registry: through it, a large cluster costs half a second a scrape.
		if err := reg.Register(health.Self()); err != nil {
			closeMembers()
			health.Close()
			return err
		}
		gatherer = prometheus.Gatherers{reg, health.ClusterGatherer()}
		expositions = append(expositions, health)
	}
	var pusher *telemetry.Pusher
	if cfg.Push.URL != "" {
		if pusher, err = telemetry.NewPusher(cfg.Push, gatherer, reg, log, components.Component("push")); err != nil {
			closeMembers()
			return cfg.Errorf("push", "%v", err)
		}
	}
	srv := server.New(server.Config{
		Flags:         opts.Web,
		TelemetryPath: opts.TelemetryPath,
		EnablePprof:   opts.EnablePprof,
		Version:       opts.Version,
		Reload:        lifecycle(opts.EnableLifecycle, reloads.Reload),
		Expositions:   expositions,
		Limits:        opts.HTTPLimits,
	}, reg, allReady(members), log)
	if err := srv.Listen(ctx); err != nil {
		closeMembers()
		if health != nil {
			health.Close()
		}
		return err
	}
	if opts.Started != nil {
		opts.Started(srv)
	}

	if opts.Reloads != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-opts.Reloads:
					_ = reloads.Reload() // logged and reported by the reloader
				}
			}
		}()
	}
	errs := make(chan error, 4+len(members))
	if health != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- health.Run(ctx) }()
	}
	if pusher != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- pusher.Run(ctx) }()
	}
	// Each member shuts down on its own budget; the log client is closed
	// once the log member has waited for acknowledgements and committed:
	// what it still holds is abandoned, uncommitted, and read again.
	var membersWG sync.WaitGroup
	for _, m := range members {
		membersWG.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer membersWG.Done()
			err := m.Run(ctx)
			cancel() // one member gone stops the process: a restart rejoins both
			errs <- err
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		membersWG.Wait()
		if lc != nil {
			lc.Close()
		}
	}()
	go func() {
		defer wg.Done()
		err := srv.Run(ctx)
		cancel()
		errs <- err
	}()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

func lifecycle(on bool, reload func() error) func() error {
	if on {
		return reload
	}
	return nil
}

// allReady is ready when every member is: each has joined its group and
// had a fetch answered.
func allReady(members []*kafka.Consumer) server.Readiness {
	return server.ReadinessFunc(func() (bool, string) {
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
func newProcessor(l *live, self *selfMetrics, tracer trace.Tracer, app *loki.Appender) *processor {
	return &processor{h: newHandler(l.load(), self), live: l, tracer: tracer, app: app, log: slog.New(slog.DiscardHandler)}
}

func withHooks(p *processor, log *slog.Logger, opts Options) *processor {
	p.log, p.panicOn = log, opts.panicOn
	return p
}

// processor adapts a handler to the consumer's batches: counting them, or
// handing every line to the worker's log-store appender.
type processor struct {
	h       *handler
	live    *live
	tracer  trace.Tracer
	app     *loki.Appender
	line    loki.Line
	log     *slog.Logger      // reports contained panics
	panicOn func([]byte) bool // test hook, see Options
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
		for _, r := range b.Records {
			if !p.count(b, r, now) {
				failed++
			}
		}
	} else {
		// The appender retains b for every batch its lines go into, so the
		// processor's own Release below does not make b committable by
		// itself.
		p.app.Append(b.Topic, b.Partition, b, func() {
			for _, r := range b.Records {
				ok := p.decode(b, r)
				if !ok {
					failed++
				}
				p.forward(r, !ok)
			}
		})
	}
	if parse != nil {
		parse.SetAttributes(attribute.Int("lines", len(b.Records)), attribute.Int("lines.failed", failed))
		parse.End()
	}
	b.Release()
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
			ok = false
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
// are the same when the record is read again after a restart, which lets
// Loki fold a re-sent line into the one it has.
func (p *processor) forward(r *kgo.Record, unparsed bool) {
	rec := &p.h.rec
	l := &p.line
	l.Line = rec.Line
	if l.Line == nil && !rec.Enveloped {
		l.Line = r.Value // not even decoded: forward the record as it is
	}
	switch {
	case !rec.Time.IsZero():
		l.Time = rec.Time
	case !rec.Timestamp.IsZero():
		l.Time = rec.Timestamp
	default:
		l.Time = r.Timestamp
	}
	l.Host, l.VHost, l.TraceID = rec.Host, rec.VHost, rec.TraceID
	l.Unparsed = unparsed
	l.Offset = r.Offset
	p.app.Add(l)
}
