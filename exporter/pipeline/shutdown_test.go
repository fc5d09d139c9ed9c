package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
)

// requestsTotal sums accesslog_http_requests_total in a text exposition.
func requestsTotal(body []byte) (float64, error) {
	var n float64
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "accesslog_http_requests_total{") {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %v", line, err)
		}
		n += f
	}
	return n, sc.Err()
}

// metricsOnly runs the metrics member alone, with opts, and returns its
// /metrics URL, a stop that returns how long the shutdown took and Run's
// error.
func metricsOnly(t *testing.T, brokers []string, opts Options) (url string, stop func() (time.Duration, error)) {
	t.Helper()
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.CommitInterval = 100 * time.Millisecond
	cfg.Kafka.Group = "g-graceful"
	cfg.Roles = []string{config.RoleMetrics}
	started := make(chan *server.Server, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts.Web = &web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}, WebSystemdSocket: new(bool), WebConfigFile: new(string)}
	opts.KafkaOpts = []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond), kgo.FetchMaxWait(200 * time.Millisecond)}
	opts.Started = func(s *server.Server) { started <- s }
	go func() { done <- Run(ctx, &cfg, opts) }()
	select {
	case s := <-started:
		url = "http://" + s.Addr().String() + "/metrics"
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server did not start")
	}
	stopped := false
	stop = func() (time.Duration, error) {
		stopped = true
		begin := time.Now()
		cancel()
		select {
		case err := <-done:
			return time.Since(begin), err
		case <-time.After(time.Minute):
			return time.Since(begin), fmt.Errorf("Run did not return within a minute of cancel")
		}
	}
	t.Cleanup(func() {
		if !stopped {
			_, _ = stop()
		}
	})
	return url, stop
}

// A graceful stop under load: what the metrics member counted after the
// last scrape is committed on the way out, so no other replica will count
// it again; /metrics stays up until a scrape has gathered those final
// counts. The last scrape a Prometheus-like scraper (every 250 ms) gets
// therefore equals the committed offsets exactly. Before, the server
// stopped at SIGTERM and the counts of the final ~scrape interval were
// never seen.
func TestGracefulStopServesFinalCounts(t *testing.T) {
	c := newCluster(t)
	const grace = 10 * time.Second
	url, stop := metricsOnly(t, c.ListenAddrs(), Options{ShutdownTimeout: 20 * time.Second, ScrapeGrace: grace})
	lines, _ := generate(t, 400000, loggen.Seed(5))
	producePaced(t, c, lines, 20000)

	var mu sync.Mutex
	var last float64
	var lastAt time.Time
	scraping := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(scraping)
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tk.C:
			}
			body, err := httpGet(url)
			if err != nil {
				continue // stopped, or not yet up: as a scrape that failed
			}
			n, err := requestsTotal(body)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			last, lastAt = n, time.Now()
			mu.Unlock()
		}
	}()
	eventually(t, 30*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		if last < 20000 {
			return fmt.Sprintf("scraped %v requests, waiting for 20000 (counting under load)", last)
		}
		return ""
	})
	began := time.Now()
	took, err := stop()
	close(quit)
	<-scraping

	var errs []string
	if err != nil {
		errs = append(errs, fmt.Sprintf("Run: %v", err))
	}
	committed := sumOffsets(groupCommits(t, c, "g-graceful"))
	mu.Lock()
	if last != float64(committed) {
		errs = append(errs, fmt.Sprintf("the last scrape (%s after the stop began) showed %v requests; the group committed %d: %+d never reach Prometheus",
			lastAt.Sub(began).Round(time.Millisecond), last, committed, committed-int64(last)))
	}
	mu.Unlock()
	if took > grace {
		errs = append(errs, fmt.Sprintf("the stop took %v, more than the grace %v though a scrape came every 250 ms", took, grace))
	}
	if len(errs) > 0 {
		t.Error(strings.Join(errs, "\n"))
	}
	t.Logf("stopped in %v; last scrape %v requests = committed %d", took, last, committed)
}

// The scrapes stopped coming (a person looked a few times, then pressed
// Ctrl-C): the stop does not wait the grace for a scrape that will not come.
func TestGracefulStopWithoutScraperDoesNotWait(t *testing.T) {
	c := newCluster(t)
	const grace = 20 * time.Second
	url, stop := metricsOnly(t, c.ListenAddrs(), Options{ShutdownTimeout: 30 * time.Second, ScrapeGrace: grace})
	for range 3 {
		if _, err := httpGet(url); err != nil {
			t.Fatal(err)
		}
	}
	lines, _ := generate(t, 2000, loggen.Seed(6))
	produceLines(t, c, lines)
	eventually(t, 30*time.Second, func() string {
		if n := sumOffsets(groupCommits(t, c, "g-graceful")); n != int64(len(lines)) {
			return fmt.Sprintf("committed %d of %d", n, len(lines))
		}
		return ""
	})
	took, err := stop()
	if err != nil || took > 5*time.Second {
		t.Errorf("stop without a scraper took %v (grace %v), Run: %v", took, grace, err)
	}
}
