package main

import (
	"context"
	"log/slog"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/demo"
)

// startDemo starts the built-in demo (--kafka.embedded) and points cfg at
// it: its brokers, and its log store when none is configured (so the demo
// shows both paths, each with its own group). It returns override extended
// to do the same after the flags on every reload, so that a reload keeps
// the demo's brokers, and stop, which ends the traffic and closes the demo:
// call it once pipeline.Run has returned, as the final commits need the
// brokers.
func startDemo(cfg *config.Config, rate float64, log *slog.Logger, override func(*config.Config) error) (func(*config.Config) error, func(), error) {
	d, err := demo.New(demo.Options{Topic: cfg.Kafka.Topics[0], Rate: rate, Sink: cfg.Loki.URL == "" && len(cfg.Roles) == 0, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	point := func(c *config.Config) {
		c.Kafka.Brokers = d.Brokers()
		if d.SinkURL() != "" && c.Loki.URL == "" && len(c.Roles) == 0 {
			c.Loki.URL = d.SinkURL()
		}
	}
	point(cfg)
	withDemo := func(c *config.Config) error {
		if err := override(c); err != nil {
			return err
		}
		point(c)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			log.Error("embedded demo", "err", err)
		}
	}()
	return withDemo, func() { cancel(); <-done }, nil
}
