package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki/lokitest"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testenv"
)

// The Loki end-to-end benchmark runs the whole exporter (Run: kfake fetch,
// decode, parse, metrics, Loki push, commit) over ACCESSLOG_BENCH_LOKI_LINES
// preloaded lines (default 300k) until every offset is committed, which by
// the delivery contract means the store acknowledged every line. "sink"
// pushes to an in-process server answering 204 at once (our cost),
// "victorialogs" to a real VictoriaLogs (ACCESSLOG_VICTORIALOGS_BIN, `make
// victorialogs`). It reports lines/s and the CPU seconds of this process
// (exporter + kfake + sink; the store's own CPU is not in it) per 100k
// lines. scripts/bench-loki.sh runs it three times for medians.
var lokiBench struct {
	once    sync.Once
	cluster *kfake.Cluster
	lines   int64
	err     error
}

func preloadLoki(b *testing.B) (*kfake.Cluster, int64) {
	lokiBench.once.Do(func() {
		n := int64(300_000)
		if s := os.Getenv("ACCESSLOG_BENCH_LOKI_LINES"); s != "" {
			if n, lokiBench.err = strconv.ParseInt(s, 10, 64); lokiBench.err != nil {
				return
			}
		}
		c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "nginxlog"), kfake.GroupMinSessionTimeout(time.Second))
		if err != nil {
			lokiBench.err = err
			return
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("nginxlog"),
			kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			lokiBench.err = err
			return
		}
		defer cl.Close()
		g, err := loggen.New(loggen.Seed(42), loggen.MalformedRatio(0.001), loggen.Hosts("web-1", "web-2", "web-3", "web-4"),
			loggen.Envelope(true), loggen.SimulatedClock(time.Now().Add(-10*time.Minute), float64(n)/300))
		if err != nil {
			lokiBench.err = err
			return
		}
		if _, err := loggen.Produce(context.Background(), cl, "nginxlog", g, 0, n); err != nil {
			lokiBench.err = err
			return
		}
		lokiBench.cluster, lokiBench.lines = c, n
	})
	if lokiBench.err != nil {
		b.Fatal(lokiBench.err)
	}
	return lokiBench.cluster, lokiBench.lines
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkEndToEndLoki(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()
	for _, target := range []string{"sink", "victorialogs"} {
		b.Run(target, func(b *testing.B) {
			url := sink.URL
			if target == "victorialogs" {
				vl, err := lokitest.StartVictoriaLogs(testenv.Binary(b, "ACCESSLOG_VICTORIALOGS_BIN", "victorialogs"), b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer vl.Stop()
				url = vl.URL + "/insert/loki/api/v1/push"
			}
			c, n := preloadLoki(b)
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				job := fmt.Sprintf("bench-%s-%d-%d", target, i, time.Now().UnixNano())
				cfg := lokiConfig(c, url, job)
				cfg.Loki.Batch.MaxBytes = 1 << 20
				cfg.Loki.Batch.MaxWait = time.Second
				cfg.Loki.Labels.VHost = true
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				r := &lokiRun{cluster: c, group: cfg.Kafka.Group}
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime()
				go func() {
					done <- Run(ctx, &cfg, Options{
						Web:       &web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}, WebSystemdSocket: new(bool), WebConfigFile: new(string)},
						KafkaOpts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)},
					})
				}()
				for {
					commit, end := committedTotal(b, r.cluster, r.group)
					if commit == n && end == n {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				elapsed, cpu := time.Since(start), cpuTime()-cpu0
				b.StopTimer()
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n)/elapsed.Seconds(), "lines/s")
				b.ReportMetric(cpu.Seconds()/float64(n)*100_000, "cpu-s/100k-lines")
				b.StartTimer()
			}
		})
	}
}
