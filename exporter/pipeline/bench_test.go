package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
)

// The end-to-end benchmark consumes a kfake cluster preloaded with loggen
// lines (ACCESSLOG_BENCH_LINES, default 200k; scripts/bench-e2e.sh uses 2M)
// through decode, parse and metrics until every offset is committed. kfake
// runs in the same process and takes its share of the two cores, so the
// figure is a floor for what a real cluster would allow.
var bench struct {
	once    sync.Once
	cluster *kfake.Cluster
	lines   int64
	err     error
}

func preload(b *testing.B) (*kfake.Cluster, int64) {
	bench.once.Do(func() {
		n := int64(200_000)
		if s := os.Getenv("ACCESSLOG_BENCH_LINES"); s != "" {
			if n, bench.err = strconv.ParseInt(s, 10, 64); bench.err != nil {
				return
			}
		}
		c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "nginxlog"), kfake.GroupMinSessionTimeout(time.Second))
		if err != nil {
			bench.err = err
			return
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("nginxlog"),
			kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			bench.err = err
			return
		}
		defer cl.Close()
		g, err := loggen.New(loggen.Seed(42), loggen.MalformedRatio(0.001), loggen.Hosts("web-1", "web-2", "web-3", "web-4", "web-5", "web-6"))
		if err != nil {
			bench.err = err
			return
		}
		if _, err := loggen.Produce(context.Background(), cl, "nginxlog", g, 0, n); err != nil {
			bench.err = err
			return
		}
		bench.cluster, bench.lines = c, n
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.cluster, bench.lines
}

func BenchmarkEndToEnd(b *testing.B) {
	c, n := preload(b)
	cfg := config.Default()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		reg := prometheus.NewRegistry()
		l, self := newTestLive(b, &cfg, reg)
		var done atomic.Int64
		kcfg := cfg.Kafka
		kcfg.Brokers = c.ListenAddrs()
		kcfg.Group = fmt.Sprintf("bench-%d-%d", i, time.Now().UnixNano())
		cons, err := kafka.New(kcfg, kafka.Options{
			NewProcessor: func(int) kafka.Processor {
				return &counting{processor: *newProcessor(l, self, nil, nil, nil), done: &done}
			},
			ExtraOpts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)},
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { stopped <- cons.Run(ctx) }()
		for done.Load() < n {
			time.Sleep(time.Millisecond)
		}
		cancel() // Run finishes in-flight batches and makes the final commit
		if err := <-stopped; err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(n)/elapsed.Seconds(), "lines/s")
		b.StartTimer()
	}
}

type counting struct {
	processor
	done *atomic.Int64
}

func (c *counting) Process(b *kafka.Batch) {
	n := int64(len(b.Records))
	c.processor.Process(b)
	c.done.Add(n)
}

// BenchmarkReplay1M replays one million lines from memory through the
// replay path (decode, parse, metrics, exposition at the end), per format:
// main_timed (request and upstream times: all four families) and plain main
// (issue 18's replay aim).
func BenchmarkReplay1M(b *testing.B) {
	for _, f := range []loggen.Format{loggen.MainTimed, loggen.Main} {
		b.Run(f.String(), func(b *testing.B) { benchReplay(b, f) })
	}
}

func benchReplay(b *testing.B, f loggen.Format) {
	const n = 1_000_000
	g, err := loggen.New(loggen.Seed(9), loggen.MalformedRatio(0.001), loggen.WithFormat(f))
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	for range n {
		buf = g.Next(buf)
		buf = append(buf, '\n')
	}
	cfg := config.Default()
	cfg.Input.Format = f.String()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		sum, err := Replay(&cfg, nil, bytes.NewReader(buf), io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		if sum.Lines != n {
			b.Fatalf("replayed %d lines, want %d", sum.Lines, n)
		}
	}
	// CPU time of the process (every goroutine: replay's one, and the
	// runtime's, GC included), what issue 18 budgets per line; wall time
	// moves with the load of a shared machine.
	b.ReportMetric(float64(cpuTime()-cpu)/float64(n)/float64(b.N), "cpu-ns/line")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
