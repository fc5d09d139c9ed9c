// Package telemetry holds the exporter's reports about itself that leave the
// process other than by a scrape: push mode, and (later) traces.
package telemetry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/component"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/credentials"
)

// Pusher sends a registry in the Prometheus text format to a URL on an
// interval, with VictoriaMetrics/metrics' push client: it gzips, adds the
// extra labels to every series and speaks to both VictoriaMetrics'
// /api/v1/import/prometheus and a Pushgateway.
type Pusher struct {
	cfg    config.Push
	g      prometheus.Gatherer
	opts   *vm.PushOptions
	log    *slog.Logger
	pushes *prometheus.CounterVec
	last   prometheus.Gauge
	status *component.Status
}

// NewPusher checks the config and registers the pusher's own metrics on reg;
// status, when set, gets every push's success and duration.
func NewPusher(cfg config.Push, g prometheus.Gatherer, reg prometheus.Registerer, log *slog.Logger, status *component.Status) (*Pusher, error) {
	opts := &vm.PushOptions{Method: cfg.Method}
	var labels []string
	for _, l := range cfg.ExtraLabels {
		name, value, _ := strings.Cut(l, "=")
		labels = append(labels, fmt.Sprintf("%s=%q", name, value))
	}
	opts.ExtraLabels = strings.Join(labels, ",")
	if cfg.BearerTokenFile != "" {
		tok, err := credentials.Secret(cfg.BearerTokenFile, "push.bearer_token_file")
		if err != nil {
			return nil, err
		}
		opts.Headers = []string{"Authorization: Bearer " + tok}
	}
	p := &Pusher{cfg: cfg, g: g, opts: opts, log: log, status: status,
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accesslog_exporter_push_total",
			Help: "Pushes of the registry in push mode, by result (success, failure).",
		}, []string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accesslog_exporter_push_last_success_timestamp_seconds",
			Help: "When the registry was last pushed successfully.",
		}),
	}
	p.pushes.WithLabelValues("success")
	p.pushes.WithLabelValues("failure")
	for _, c := range []prometheus.Collector{p.pushes, p.last} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Run pushes every interval until ctx ends, then once more so that the last
// counts reach the receiver.
func (p *Pusher) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
			p.Push(final)
			cancel()
			return nil
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
			p.Push(pctx)
			cancel()
		}
	}
}

// Push sends the registry once.
func (p *Pusher) Push(ctx context.Context) error {
	var gatherErr error
	write := func(w io.Writer) {
		mfs, err := p.g.Gather()
		if err != nil {
			// A partial registry is still worth sending; the error is logged.
			gatherErr = err
		}
		var b bytes.Buffer
		enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				gatherErr = err
			}
		}
		_, _ = w.Write(b.Bytes())
	}
	start := time.Now()
	err := vm.PushMetricsExt(ctx, p.cfg.URL, write, p.opts)
	p.status.Report(time.Since(start), err)
	if gatherErr != nil {
		p.log.Warn("push: gathering metrics", "err", gatherErr)
	}
	if err != nil {
		p.pushes.WithLabelValues("failure").Inc()
		p.log.Warn("push failed", "url", config.RedactURL(p.cfg.URL), "err", err)
		return err
	}
	p.pushes.WithLabelValues("success").Inc()
	p.last.SetToCurrentTime()
	return nil
}
