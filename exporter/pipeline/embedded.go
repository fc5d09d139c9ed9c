package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	sink    *http.Server
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
	// Round robin, not by key: the generator keys records by its 3 hosts,
	// which would leave half of the 6 partitions empty and their lag -1 on
	// the dashboard, which reads like a fault in a healthy demo.
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic(e.topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
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

func (e *embedded) close() {
	e.cluster.Close()
	if e.sink != nil {
		e.sink.Close()
	}
}

// startSink serves a log store that acknowledges every push and keeps
// nothing, so that the demo runs the log path's member too (its group, its
// commits, its lag) when no loki.url is configured.
func (e *embedded) startSink() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("embedded log sink: %w", err)
	}
	e.sink = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
		}),
	}
	go func() { _ = e.sink.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	e.log.Info("embedded log sink started (acknowledges and discards every line)", "url", url)
	return url, nil
}
