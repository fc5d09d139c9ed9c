package kafkahealth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
)

// The large cluster: 2,000 topics x 12 partitions and 100 groups,
// each group committed on 5 topics 5 records behind their end (6,000
// lagging partitions, more than lag_seconds_partitions reads).
const (
	benchTopics     = 2000
	benchPartitions = 12
	benchGroups     = 100
	benchPerGroup   = 5
)

func newLargeCluster(b *testing.B) *healthCluster {
	b.Helper()
	names := make([]string, benchTopics)
	for i := range names {
		names[i] = fmt.Sprintf("topic-%04d", i)
	}
	hc := newHealthCluster(b, kfake.SeedTopics(benchPartitions, names...))
	cl, err := kgo.NewClient(kgo.SeedBrokers(hc.c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	lagging := benchGroups * benchPerGroup
	var recs []*kgo.Record
	for _, t := range names[:lagging] {
		for p := range int32(benchPartitions) {
			for range 10 {
				recs = append(recs, &kgo.Record{Topic: t, Partition: p, Value: []byte("x")})
			}
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	for g := range benchGroups {
		os := make(kadm.Offsets)
		for _, t := range names[g*benchPerGroup : (g+1)*benchPerGroup] {
			for p := range int32(benchPartitions) {
				os.AddOffset(t, p, 5, -1)
			}
		}
		if err := hc.adm.CommitAllOffsets(context.Background(), fmt.Sprintf("group-%03d", g), os); err != nil {
			b.Fatal(err)
		}
	}
	return hc
}

// Accept headers as Prometheus sends them.
const (
	acceptText        = "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	acceptOpenMetrics = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	acceptProto       = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)

// scrapeFormats are the formats Prometheus negotiates, with and without
// compression.
var scrapeFormats = []struct{ name, accept, enc string }{
	{"text", acceptText, "identity"},
	{"text_gzip", acceptText, "gzip"},
	{"openmetrics", acceptOpenMetrics, "identity"},
	{"openmetrics_gzip", acceptOpenMetrics, "gzip"},
	{"proto", acceptProto, "identity"},
	{"proto_gzip", acceptProto, "gzip"},
}

func get(tb testing.TB, h http.Handler, accept, enc string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", enc)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec
}

// BenchmarkHealthLargeCluster reports one poll's duration (with the
// encoding of the snapshot in the six formats scrapes asked for) and one
// scrape's time and size through the exporter's metrics endpoint, per
// format:
//
//	go test ./exporter/kafka/ -run '^$' -bench HealthLargeCluster -benchtime 5x -count 5
func BenchmarkHealthLargeCluster(b *testing.B) {
	hc := newLargeCluster(b)
	hcfg := testHealthConfig()
	hcfg.Timeout = 60 * time.Second
	h := newTestHealth(b, hc, hcfg)
	if !h.PollOnce(context.Background()) {
		b.Fatal("first poll failed")
	}

	// As pipeline.Run serves it: the poller's own metrics on the
	// registry, the cluster series pre-encoded.
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Self())
	handler := server.New(server.Config{Expositions: []server.Exposition{h}}, reg, nil, nil).Handler()
	// Scrapes that asked once are served from the next poll on from bytes
	// encoded by the poll, as a Prometheus scraping every interval is.
	for _, c := range scrapeFormats {
		get(b, handler, c.accept, c.enc)
	}

	b.Run("poll", func(b *testing.B) {
		for b.Loop() {
			if !h.PollOnce(context.Background()) {
				b.Fatal("poll failed")
			}
		}
		b.ReportMetric(float64(len(h.last.Load().metrics)), "samples")
	})

	for _, c := range scrapeFormats {
		b.Run("scrape_"+c.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				size = get(b, handler, c.accept, c.enc).Body.Len()
			}
			b.ReportMetric(float64(size), "bytes")
		})
	}
}
