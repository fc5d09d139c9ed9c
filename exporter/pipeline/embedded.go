package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
)

// embedded is the demo's Kafka: three kfake brokers on loopback with the
// topic made, and the traffic generator writing into it. The consumer reaches
// it over the real Kafka protocol, exactly as it would a real cluster.
type embedded struct {
	cluster *kfake.Cluster
	brokers []string
	topic   string
	rate    float64
	log     *slog.Logger
}

func startEmbedded(_ context.Context, topic string, rate float64, log *slog.Logger) (*embedded, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, topic))
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	if rate <= 0 {
		rate = 200
	}
	log.Info("embedded kafka started", "brokers", c.ListenAddrs(), "topic", topic, "partitions", 6, "rate", rate)
	return &embedded{cluster: c, brokers: c.ListenAddrs(), topic: topic, rate: rate, log: log}, nil
}

// generate writes live traffic (stamped with the wall clock, so event delay
// is real) until ctx ends; a produce failure is retried after a pause since
// the demo should outlive a hiccup.
func (e *embedded) generate(ctx context.Context) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic(e.topic))
	if err != nil {
		e.log.Error("embedded generator", "err", err)
		return
	}
	defer cl.Close()
	g, err := loggen.New(loggen.Seed(time.Now().UnixNano()), loggen.Clock(time.Now),
		loggen.Envelope(true), loggen.MalformedRatio(0.002), loggen.Hosts("web-1", "web-2", "web-3"))
	if err != nil {
		e.log.Error("embedded generator", "err", err)
		return
	}
	for ctx.Err() == nil {
		if _, err := loggen.Produce(ctx, cl, e.topic, g, e.rate, 0); err != nil {
			e.log.Warn("embedded generator", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (e *embedded) close() { e.cluster.Close() }
