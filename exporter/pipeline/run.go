// Package pipeline is the glue: Kafka records are decoded, parsed and
// counted, then their offsets are committed; it is the only package that
// knows all the others.
package pipeline

import (
	"context"
	"errors"
	"log/slog"
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

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"
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
		wg.Add(1)
		go func() { defer wg.Done(); emb.generate(ctx) }()
	}

	tracing, err := telemetry.NewTracing(ctx, cfg.Tracing, opts.Version, opts.SpanProcessors...)
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
	kopts := kafka.Options{
		Tracer:       tracing.Tracer("github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"),
		NewProcessor: func(int) kafka.Processor { return newProcessor(l, self, tracer, nil) },
		Logger:       log,
		Registerer:   reg,
		ExtraOpts:    opts.KafkaOpts,
	}
	var lc *loki.Client
	if cfg.Loki.URL != "" {
		lopts := loki.Options{Logger: log, Registerer: reg, UserAgent: "accesslog-exporter/" + opts.Version}
		if tracing.Enabled() {
			lopts.Tracer = tracing.Tracer("github.com/accesslog-exporter/accesslog-exporter/exporter/loki")
		}
		lc, err = loki.New(cfg.Loki, lopts)
		if err != nil {
			return cfg.Errorf("loki", "%v", err)
		}
		// An offset is committed only once Loki has every line up to it:
		// each worker's appender retains the Kafka batch until acknowledged,
		// and fetching pauses while too much waits for Loki.
		kopts.NewProcessor = func(int) kafka.Processor {
			return newProcessor(l, self, tracer, lc.NewAppender())
		}
		kopts.MaxInflightBytes = int64(cfg.Loki.MaxInflightBytes)
		kopts.Flush = lc.Flush
		kopts.ShutdownTimeout = cfg.Loki.ShutdownTimeout
		kopts.RevokeTimeout = cfg.Loki.ShutdownTimeout
	}
	cons, err := kafka.New(kcfg, kopts)
	if err != nil {
		return err
	}
	if lc != nil {
		lc.Start()
	}
	// Every replica polls cluster health; the series do not depend on the
	// replica, and the shipped rules take max over replicas
	// (docs/kafka-health.md).
	var health *kafka.Health
	var gatherer prometheus.Gatherer = reg
	var expositions []server.Exposition
	if cfg.Health.Enabled {
		health, err = kafka.NewHealth(kcfg, cfg.Health, kafka.HealthOptions{Logger: log})
		if err != nil {
			cons.Client().Close()
			return cfg.Errorf("health", "%v", err)
		}
		// The cluster series are encoded once per poll and served beside
		// the registry: through it, a large cluster costs half a second a scrape.
		if err := reg.Register(health.Self()); err != nil {
			cons.Client().Close()
			health.Close()
			return err
		}
		gatherer = prometheus.Gatherers{reg, health.ClusterGatherer()}
		expositions = append(expositions, health)
	}
	var pusher *telemetry.Pusher
	if cfg.Push.URL != "" {
		if pusher, err = telemetry.NewPusher(cfg.Push, gatherer, reg, log); err != nil {
			cons.Client().Close()
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
	}, reg, cons, log)
	if err := srv.Listen(ctx); err != nil {
		cons.Client().Close()
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
	errs := make(chan error, 4)
	if health != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- health.Run(ctx) }()
	}
	if pusher != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- pusher.Run(ctx) }()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		err := cons.Run(ctx)
		if lc != nil {
			// The consumer has waited for acknowledgements (bounded) and
			// committed; what Loki still holds is abandoned, uncommitted.
			lc.Close()
		}
		cancel() // the server has nothing to report once the consumer is gone
		errs <- err
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

// newProcessor builds one worker's processor; tracer is nil when tracing is
// off.
func newProcessor(l *live, self *selfMetrics, tracer trace.Tracer, app *loki.Appender) *processor {
	return &processor{h: newHandler(l.load(), self), live: l, tracer: tracer, app: app}
}

// processor adapts a handler to the consumer's batches and, when Loki is
// configured, hands every line to the worker's appender.
type processor struct {
	h      *handler
	live   *live
	tracer trace.Tracer
	app    *loki.Appender
	line   loki.Line
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
			if p.h.handle(r.Value, now) != nil {
				failed++
			}
		}
	} else {
		// The appender retains b for every Loki batch its lines go into, so
		// the processor's own Release below does not make b committable by
		// itself.
		p.app.Begin(b.Topic, b.Partition, b)
		for _, r := range b.Records {
			pe := p.h.handle(r.Value, now)
			if pe != nil {
				failed++
			}
			p.forward(r, pe != nil)
		}
		p.app.End()
	}
	if parse != nil {
		parse.SetAttributes(attribute.Int("lines", len(b.Records)), attribute.Int("lines.failed", failed))
		parse.End()
	}
	b.Release()
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
