package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// The demo's traffic reaches every partition, so that no partition of a
// healthy demo shows kafka_consumergroup_lag -1 (no commit ever).
func TestEmbeddedTrafficFillsEveryPartition(t *testing.T) {
	e, err := startEmbedded(context.Background(), "nginxlog", 2000, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.generate(ctx) }()
	defer func() { cancel(); <-done }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	testbed.Eventually(t, 20*time.Second, func() []string {
		ends, err := adm.ListEndOffsets(context.Background(), "nginxlog")
		if err != nil {
			return []string{err.Error()}
		}
		var empty []string
		n := 0
		ends.Each(func(o kadm.ListedOffset) {
			n++
			if o.Offset == 0 {
				empty = append(empty, fmt.Sprintf("partition %d has no records", o.Partition))
			}
		})
		if n != 6 {
			empty = append(empty, fmt.Sprintf("%d partitions listed, want 6", n))
		}
		return empty
	})
}
