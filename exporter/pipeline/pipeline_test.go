package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// scrape holds parsed metric families with helpers to sum them.
type scrape map[string]*dto.MetricFamily

func parse(t *testing.T, text []byte) scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	return mfs
}

// sum adds the family's values (counters) or sums (histograms) over the
// series whose labels include match.
func (s scrape) sum(name string, match map[string]string) float64 {
	mf := s[name]
	if mf == nil {
		return 0
	}
	var total float64
	for _, m := range mf.Metric {
		if !labelsMatch(m, match) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Histogram != nil:
			total += m.Histogram.GetSampleSum()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		}
	}
	return total
}

func (s scrape) count(name string, match map[string]string) uint64 {
	var n uint64
	if mf := s[name]; mf != nil {
		for _, m := range mf.Metric {
			if m.Histogram != nil && labelsMatch(m, match) {
				n += m.Histogram.GetSampleCount()
			}
		}
	}
	return n
}

func labelsMatch(m *dto.Metric, match map[string]string) bool {
	for k, v := range match {
		found := false
		for _, lp := range m.Label {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// checkTotals asserts that the metrics agree exactly with what the
// generators produced.
func checkTotals(t *testing.T, s scrape, tot loggen.Totals) {
	t.Helper()
	for _, m := range totalsMismatches(s, tot) {
		t.Error(m)
	}
}

// totalsMismatches lists every way the metrics disagree with what the
// generators produced; none when they agree exactly.
func totalsMismatches(s scrape, tot loggen.Totals) []string {
	var out []string
	eq := func(what string, got, want float64) {
		if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
			out = append(out, fmt.Sprintf("%s = %v, want %v", what, got, want))
		}
	}
	eq("requests", s.sum("accesslog_http_requests_total", nil), float64(tot.Requests))
	eq("parsed records", s.sum("accesslog_exporter_records_total", map[string]string{"result": "parsed"}), float64(tot.Requests))
	eq("failed records", s.sum("accesslog_exporter_records_total", map[string]string{"result": "failed"}), float64(tot.Malformed))
	eq("parse errors", s.sum("accesslog_exporter_parse_errors_total", nil), float64(tot.Malformed))
	for class := 1; class <= 5; class++ {
		label := fmt.Sprintf("%dxx", class)
		eq("requests "+label, s.sum("accesslog_http_requests_total", map[string]string{"status_class": label}), float64(tot.Classes[class]))
	}
	for status, n := range tot.Statuses {
		eq(fmt.Sprintf("requests status=%d", status), s.sum("accesslog_http_requests_total", map[string]string{"status": fmt.Sprint(status)}), float64(n))
	}
	for method, n := range tot.Methods {
		if method == "" {
			method = "unknown" // TLS bytes and empty requests
		}
		eq("requests method="+method, s.sum("accesslog_http_requests_total", map[string]string{"method": method}), float64(n))
	}
	for vhost, n := range tot.VHosts {
		eq("requests vhost="+vhost, s.sum("accesslog_http_requests_total", map[string]string{"vhost": vhost}), float64(n))
	}
	eq("request time sum", s.sum("accesslog_http_request_duration_seconds", nil), tot.RequestTime())
	eq("upstream time sum", s.sum("accesslog_http_upstream_duration_seconds", nil), tot.UpstreamResponseTime())
	eq("body bytes sum", s.sum("accesslog_http_response_size_bytes", nil), float64(tot.BodyBytes))
	if got := s.count("accesslog_http_request_duration_seconds", nil); got != uint64(tot.Requests) {
		out = append(out, fmt.Sprintf("request duration observations = %d, want %d", got, tot.Requests))
	}
	return out
}

func generate(t *testing.T, n int, opts ...loggen.Option) ([][]byte, loggen.Totals) {
	t.Helper()
	g, err := loggen.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	lines := make([][]byte, n)
	for i := range lines {
		lines[i] = g.Next(nil)
	}
	return lines, g.Totals()
}

func TestReplayCountsMatchGenerator(t *testing.T) {
	lines, tot := generate(t, 20000, loggen.Seed(3), loggen.MalformedRatio(0.01))
	in := bytes.Join(lines, []byte("\n"))
	var out bytes.Buffer
	cfg := config.Default()
	sum, err := Replay(&cfg, nil, bytes.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Lines != 20000 || sum.Failed != tot.Malformed || sum.Parsed != tot.Requests {
		t.Errorf("summary lines=%d parsed=%d failed=%d, want 20000/%d/%d", sum.Lines, sum.Parsed, sum.Failed, tot.Requests, tot.Malformed)
	}
	if tot.Malformed == 0 || len(sum.Failures) != min(int(tot.Malformed), maxFailures) {
		t.Errorf("listed %d failures of %d", len(sum.Failures), tot.Malformed)
	}
	for _, f := range sum.Failures {
		if f.Line < 1 || f.Reason == "" || !strings.Contains(f.Err, "byte ") {
			t.Errorf("failure lacks line, reason or offset: %+v", f)
		}
	}
	checkTotals(t, parse(t, out.Bytes()), tot)
}

// The "main" format logs no host and no timings: counts by status, class and
// method and the byte sum must still match, and no duration is invented.
func TestReplayMainFormat(t *testing.T) {
	lines, tot := generate(t, 5000, loggen.Seed(5), loggen.WithFormat(loggen.Main), loggen.MalformedRatio(0.01))
	cfg := config.Default()
	cfg.Input.Format = "main"
	cfg.Input.DefaultVHost = "www.example.com"
	var out bytes.Buffer
	sum, err := Replay(&cfg, nil, bytes.NewReader(bytes.Join(lines, []byte("\n"))), &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Parsed != tot.Requests || sum.Failed != tot.Malformed {
		t.Errorf("parsed %d failed %d, want %d and %d", sum.Parsed, sum.Failed, tot.Requests, tot.Malformed)
	}
	s := parse(t, out.Bytes())
	if got := s.sum("accesslog_http_requests_total", map[string]string{"vhost": "www.example.com"}); got != float64(tot.Requests) {
		t.Errorf("requests under the default vhost = %v, want %d", got, tot.Requests)
	}
	for status, n := range tot.Statuses {
		if got := s.sum("accesslog_http_requests_total", map[string]string{"status": fmt.Sprint(status)}); got != float64(n) {
			t.Errorf("status %d: %v, want %d", status, got, n)
		}
	}
	for method, n := range tot.Methods {
		if method == "" {
			method = "unknown"
		}
		if got := s.sum("accesslog_http_requests_total", map[string]string{"method": method}); got != float64(n) {
			t.Errorf("method %s: %v, want %d", method, got, n)
		}
	}
	if got := s.sum("accesslog_http_response_size_bytes", nil); got != float64(tot.BodyBytes) {
		t.Errorf("body bytes = %v, want %d", got, tot.BodyBytes)
	}
	if got := s.count("accesslog_http_request_duration_seconds", nil); got != 0 {
		t.Errorf("%d request durations observed from a format that logs none", got)
	}
}

func TestReplayBadFormatNamesField(t *testing.T) {
	cfg, err := config.Parse("exporter.yml", []byte("input:\n  format: '$remote_addr $status'\n  escape: default\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Input.Format = "$remote_addr ${time_local"
	_, err = Replay(cfg, nil, strings.NewReader(""), &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "exporter.yml:2: input.format: ") {
		t.Errorf("error = %v, want it to name exporter.yml:2: input.format", err)
	}
}

// End to end over the Kafka protocol: raw and Filebeat-wrapped lines with
// malformed ones in several partitions; the metrics equal what was produced,
// exactly, and the committed offsets reach the end of every partition.
func TestKafkaEndToEnd(t *testing.T) {
	c := testbed.Cluster(t)
	raw, totRaw := generate(t, 6000, loggen.Seed(11), loggen.MalformedRatio(0.01))
	env, totEnv := generate(t, 6000, loggen.Seed(12), loggen.MalformedRatio(0.01), loggen.Envelope(true))
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("nginxlog"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range raw {
		recs = append(recs, &kgo.Record{Value: raw[i]}, &kgo.Record{Value: env[i]})
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	prod.Close()

	cfg := config.Default()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Kafka.CommitInterval = 100 * time.Millisecond
	addr := "127.0.0.1:0"
	started := make(chan *server.Server, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // a failed wait stops the run too
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = Run(ctx, &cfg, Options{
			Web:       &web.FlagConfig{WebListenAddresses: &[]string{addr}, WebSystemdSocket: new(bool), WebConfigFile: new(string)},
			KafkaOpts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)},
			Started:   func(s *server.Server) { started <- s },
		})
	}()
	var srv *server.Server
	select {
	case srv = <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("server did not start")
	}
	url := "http://" + srv.Addr().String() + "/metrics"
	tot := totRaw
	tot.Requests += totEnv.Requests
	tot.Malformed += totEnv.Malformed
	for i := range tot.Classes {
		tot.Classes[i] += totEnv.Classes[i]
	}
	tot.Statuses = mergeCounts(totRaw.Statuses, totEnv.Statuses)
	tot.VHosts = mergeCounts(totRaw.VHosts, totEnv.VHosts)
	tot.Methods = mergeCounts(totRaw.Methods, totEnv.Methods)
	tot.RequestTimeMillis += totEnv.RequestTimeMillis
	tot.UpstreamResponseTimeMillis += totEnv.UpstreamResponseTimeMillis
	tot.BodyBytes += totEnv.BodyBytes
	// Each collector of a scrape moves on its own: poll until every total
	// agrees, then report whatever still does not.
	testbed.Eventually(t, 30*time.Second, func() []string { return totalsMismatches(parse(t, get(t, url)), tot) })

	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("Run: %v", runErr)
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	lag, err := kadm.NewClient(adm).Lag(context.Background(), cfg.Kafka.Group)
	if err != nil {
		t.Fatal(err)
	}
	lag.Each(func(l kadm.DescribedGroupLag) {
		if l.Error() != nil {
			t.Fatal(l.Error())
		}
		if total := l.Lag.Total(); total != 0 {
			t.Errorf("group lag after shutdown = %d, want 0 (every offset committed)", total)
		}
		var committed int64
		for _, ps := range l.Lag {
			for _, pl := range ps {
				committed += pl.Commit.At
			}
		}
		if committed != int64(len(recs)) {
			t.Errorf("committed offsets sum to %d, want %d", committed, len(recs))
		}
	})
}

func mergeCounts[K comparable](a, b map[K]int64) map[K]int64 {
	out := map[K]int64{}
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return b.Bytes()
}
