// Package demo is the built-in demo behind --kafka.embedded: three kfake
// brokers on loopback with the topic made, the traffic generator writing
// into them, and, when asked, a log store that acknowledges and discards.
// The exporter reaches them over the real protocols, exactly as it would a
// real cluster and store; the production packages know nothing of it.
package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
)

// Partitions is the number of partitions of the demo's topic.
const Partitions = 6

// Options set up a Demo.
type Options struct {
	// Topic is made with Partitions partitions and receives the traffic.
	Topic string
	// Rate is the lines per second the generator writes; 200 when <= 0.
	Rate float64
	// Sink also starts the log store (SinkURL), so that the demo runs the
	// log path too when no store is configured.
	Sink   bool
	Logger *slog.Logger
}

// Demo is the demo's Kafka cluster, its traffic and its log store.
type Demo struct {
	opts      Options
	cluster   *kfake.Cluster
	sink      *http.Server
	sinkURL   string
	closeOnce sync.Once
}

// New starts the brokers, and the log store if asked, listening on
// loopback so that their addresses can be configured before anything
// connects; traffic starts with Run.
func New(opts Options) (*Demo, error) {
	if opts.Rate <= 0 {
		opts.Rate = 200
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(Partitions, opts.Topic))
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	d := &Demo{opts: opts, cluster: c}
	opts.Logger.Info("embedded kafka started", "brokers", c.ListenAddrs(), "topic", opts.Topic, "partitions", Partitions, "rate", opts.Rate)
	if opts.Sink {
		if err := d.startSink(); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// Brokers are the seed brokers of the demo's cluster.
func (d *Demo) Brokers() []string { return d.cluster.ListenAddrs() }

// SinkURL is the log store's push URL, empty without Options.Sink.
func (d *Demo) SinkURL() string { return d.sinkURL }

// Run writes live traffic (stamped with the wall clock, so event delay is
// real) until ctx ends, then closes the cluster and the log store. A
// produce failure is retried after a pause: the demo should outlive a
// hiccup. Consumers still committing need the brokers, so end ctx only
// once they are done.
func (d *Demo) Run(ctx context.Context) error {
	defer d.Close()
	// Round robin, not by key: the generator keys records by its 3 hosts,
	// which would leave half of the 6 partitions empty and their lag -1 on
	// the dashboard, which reads like a fault in a healthy demo.
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.Brokers()...), kgo.DefaultProduceTopic(d.opts.Topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		return fmt.Errorf("embedded generator: %w", err)
	}
	defer cl.Close()
	g, err := loggen.New(loggen.Seed(time.Now().UnixNano()), loggen.Clock(time.Now),
		loggen.Envelope(true), loggen.MalformedRatio(0.002), loggen.Hosts("web-1", "web-2", "web-3"))
	if err != nil {
		return fmt.Errorf("embedded generator: %w", err)
	}
	for ctx.Err() == nil {
		if _, err := loggen.Produce(ctx, cl, d.opts.Topic, g, d.opts.Rate, 0); err != nil {
			d.opts.Logger.Warn("embedded generator", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// Close closes the cluster and the log store at once (kfake keeps nothing
// to flush, the store holds nothing); Run calls it on the way out, so only
// a Demo that never ran needs it. Safe to call more than once.
func (d *Demo) Close() {
	d.closeOnce.Do(func() {
		d.cluster.Close()
		if d.sink != nil {
			_ = d.sink.Close()
		}
	})
}

// startSink serves a log store that acknowledges every push and keeps
// nothing, so that the demo runs the log path's member too (its group, its
// commits, its lag) when no loki.url is configured.
func (d *Demo) startSink() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("embedded log sink: %w", err)
	}
	d.sink = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
		}),
	}
	go func() { _ = d.sink.Serve(ln) }()
	d.sinkURL = "http://" + ln.Addr().String()
	d.opts.Logger.Info("embedded log sink started (acknowledges and discards every line)", "url", d.sinkURL)
	return nil
}
