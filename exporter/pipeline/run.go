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

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/metrics"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
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
	dec, err := compileInput(cfg)
	if err != nil {
		return err
	}
	reqs, err := metrics.New(cfg.Metrics, reg, metrics.DefaultVHost(dec.defaultVHost))
	if err != nil {
		return cfg.Errorf("metrics", "%v", err)
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

	cons, err := kafka.New(kcfg, kafka.Options{
		NewProcessor: func(int) kafka.Processor { return &processor{h: newHandler(dec, reqs, self)} },
		Logger:       log,
		Registerer:   reg,
		ExtraOpts:    opts.KafkaOpts,
	})
	if err != nil {
		return err
	}
	srv := server.New(server.Config{
		Flags:         opts.Web,
		TelemetryPath: opts.TelemetryPath,
		EnablePprof:   opts.EnablePprof,
		Version:       opts.Version,
	}, reg, cons, log)
	if err := srv.Listen(ctx); err != nil {
		cons.Client().Close()
		return err
	}
	if opts.Started != nil {
		opts.Started(srv)
	}

	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		err := cons.Run(ctx)
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

// processor adapts a handler to the consumer's batches.
type processor struct{ h *handler }

func (p *processor) Process(b *kafka.Batch) {
	now := time.Now()
	for _, r := range b.Records {
		p.h.handle(r.Value, now)
	}
	b.Release()
}
