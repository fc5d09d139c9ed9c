package kafka

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// holder is a Processor standing in for Loki: it retains every batch (as
// the Loki client does until acknowledged) and releases on demand.
type holder struct {
	mu      sync.Mutex
	held    []*Batch
	handed  atomic.Int64 // record bytes handed to the processor
	records atomic.Int64
	open    atomic.Bool // release at once instead of holding
}

func (h *holder) Process(b *Batch) {
	h.handed.Add(b.Bytes())
	h.records.Add(int64(len(b.Records)))
	if !h.open.Load() {
		b.Retain()
		h.mu.Lock()
		h.held = append(h.held, b)
		h.mu.Unlock()
	}
	b.Release()
}

func (h *holder) releaseAll() {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	for _, b := range held {
		b.Release()
	}
}

func TestFetchPausesAtInflightBound(t *testing.T) {
	c := testbed.Cluster(t)
	// Small record batches, so that one fetch cannot overshoot the bound by much.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerBatchMaxBytes(2000), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%09d", i)}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	cfg := testConfig(c, "pause")
	cfg.FetchMaxBytes = 4000
	cfg.FetchMaxPartitionBytes = 2000
	h := &holder{}
	const bound = 10000
	cons, err := New(cfg, Options{
		NewProcessor: func(int) Processor { return h }, MaxInflightBytes: bound,
		ExtraOpts:       append(append([]kgo.Opt{}, fastGroup...), kgo.FetchMaxWait(100*time.Millisecond)),
		ShutdownTimeout: 2 * time.Second, RevokeTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cons.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	testbed.WaitFor(t, "fetching to pause", 10*time.Second, cons.Paused)
	time.Sleep(500 * time.Millisecond)
	first := h.handed.Load()
	time.Sleep(500 * time.Millisecond)
	if again := h.handed.Load(); again != first {
		t.Errorf("still fetching while paused: %d then %d bytes handed out", first, again)
	}
	// The bound, plus what one poll can bring past it.
	if first > bound+6*int64(cfg.FetchMaxBytes) || cons.InflightBytes() != first {
		t.Errorf("handed out %d bytes, in flight %d; bound %d", first, cons.InflightBytes(), bound)
	}
	if commit, _ := committed(t, c, "pause"); commit > 0 {
		t.Errorf("committed %d offsets while every batch is held", commit)
	}

	// Acknowledge: room frees, fetching resumes and everything is committed.
	h.open.Store(true)
	h.releaseAll()
	testbed.WaitFor(t, "all records", 20*time.Second, func() bool { return h.records.Load() >= n })
	testbed.WaitFor(t, "all committed", 10*time.Second, func() bool {
		commit, end := committed(t, c, "pause")
		return commit == end && end == n
	})
	if cons.Paused() {
		t.Error("still paused after everything was released")
	}
}
