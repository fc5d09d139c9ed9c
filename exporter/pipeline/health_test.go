package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// A running exporter serves the health poller's cluster series (encoded
// once per poll, beside the registry) after its first poll, with its own
// series and the rest of the registry, gzipped (Go's client asks for gzip
// and reads the stream of members) and in OpenMetrics with one final
// "# EOF".
func TestHealthSeriesOnMetrics(t *testing.T) {
	c := testbed.Cluster(t)

	cfg := config.Default()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Health.Interval = 300 * time.Millisecond
	cfg.Health.Timeout = 250 * time.Millisecond
	started := make(chan *server.Server, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = Run(ctx, &cfg, Options{
			Web:       &web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}, WebSystemdSocket: new(bool), WebConfigFile: new(string)},
			KafkaOpts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)},
			Started:   func(s *server.Server) { started <- s },
		})
	}()
	defer func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			t.Errorf("Run: %v", runErr)
		}
	}()
	var srv *server.Server
	select {
	case srv = <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("server did not start")
	}
	url := "http://" + srv.Addr().String() + "/metrics"

	mismatches := func(s scrape) []string {
		var out []string
		if got := s.sum("kafka_topic_partitions", map[string]string{"topic": "nginxlog"}); got != 6 {
			out = append(out, fmt.Sprintf("kafka_topic_partitions{topic=nginxlog} = %v, want 6", got))
		}
		// The poller reports itself as every component does.
		if got := s.sum("accesslog_exporter_component_success", map[string]string{"component": "kafka_health"}); got != 1 {
			out = append(out, fmt.Sprintf(`accesslog_exporter_component_success{component="kafka_health"} = %v, want 1`, got))
		}
		for _, name := range []string{"accesslog_exporter_kafka_up", "accesslog_exporter_component_duration_seconds", "accesslog_exporter_records_total", "promhttp_metric_handler_requests_total"} {
			if s[name] == nil {
				out = append(out, name+" missing beside the health series")
			}
		}
		return out
	}
	testbed.Eventually(t, 20*time.Second, func() []string { return mismatches(parse(t, get(t, url))) })

	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(body, []byte("# EOF")); n != 1 || !bytes.HasSuffix(body, []byte("\n# EOF\n")) {
		t.Errorf("OpenMetrics body has %d '# EOF', want one, last", n)
	}
	if !bytes.Contains(body, []byte("\nkafka_topic_partitions{topic=\"nginxlog\"} 6")) {
		t.Errorf("OpenMetrics body lacks kafka_topic_partitions")
	}
}
