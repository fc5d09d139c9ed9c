package demo

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// run runs d until the returned stop is called, which waits for Run.
func run(t *testing.T, d *Demo) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return fmt.Errorf("Run did not return within 15s of its context ending")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// The demo's traffic reaches every partition, so that no partition of a
// healthy demo shows kafka_consumergroup_lag -1 (no commit ever).
func TestTrafficFillsEveryPartition(t *testing.T) {
	d, err := New(Options{Topic: "nginxlog", Rate: 2000})
	if err != nil {
		t.Fatal(err)
	}
	run(t, d)

	cl, err := kgo.NewClient(kgo.SeedBrokers(d.Brokers()...))
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
		if n != Partitions {
			empty = append(empty, fmt.Sprintf("%d partitions listed, want %d", n, Partitions))
		}
		return empty
	})
}

// The sink acknowledges a push with 204 and keeps nothing; once Run has
// returned, neither the brokers nor the sink accept connections.
func TestSinkAcknowledgesAndRunClosesEverything(t *testing.T) {
	d, err := New(Options{Topic: "nginxlog", Sink: true})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, d)
	if !strings.HasPrefix(d.SinkURL(), "http://127.0.0.1:") {
		t.Fatalf("SinkURL %q, want a loopback http URL", d.SinkURL())
	}
	resp, err := http.Post(d.SinkURL()+"/loki/api/v1/push", "application/x-protobuf", strings.NewReader("anything"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	brokers := d.Brokers()
	runErr := stop()
	var mismatches []string
	if resp.StatusCode != http.StatusNoContent {
		mismatches = append(mismatches, fmt.Sprintf("push answered %s, want 204", resp.Status))
	}
	if runErr != nil {
		mismatches = append(mismatches, fmt.Sprintf("Run: %v", runErr))
	}
	if len(brokers) != 3 {
		mismatches = append(mismatches, fmt.Sprintf("%d brokers, want 3", len(brokers)))
	}
	for _, addr := range append(brokers, strings.TrimPrefix(d.SinkURL(), "http://")) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			mismatches = append(mismatches, addr+" still accepts connections after Run returned")
		}
	}
	for _, m := range mismatches {
		t.Error(m)
	}
}

// Without Sink there is no log store; Close on a demo that never ran
// releases the brokers, and may be called again.
func TestNoSinkAndCloseWithoutRun(t *testing.T) {
	d, err := New(Options{Topic: "nginxlog"})
	if err != nil {
		t.Fatal(err)
	}
	brokers := d.Brokers()
	d.Close()
	d.Close()
	if d.SinkURL() != "" {
		t.Errorf("SinkURL %q without Options.Sink, want empty", d.SinkURL())
	}
	for _, addr := range brokers {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", addr)
		}
	}
}
