package kafka

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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

// BenchmarkHealthLargeCluster reports one poll's duration and one scrape's
// time and size (text format, as Prometheus asks without compression, and
// gzip):
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

	b.Run("poll", func(b *testing.B) {
		for b.Loop() {
			if !h.PollOnce(context.Background()) {
				b.Fatal("poll failed")
			}
		}
		b.ReportMetric(float64(len(h.last.Load().metrics)), "samples")
	})

	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	handler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	for _, c := range []struct{ name, accept, enc string }{
		{"text", "text/plain;version=0.0.4", "identity"},
		{"text_gzip", "text/plain;version=0.0.4", "gzip"},
		{"proto", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "identity"},
	} {
		b.Run("scrape_"+c.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				req.Header.Set("Accept", c.accept)
				req.Header.Set("Accept-Encoding", c.enc)
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("scrape: %d %s", rec.Code, rec.Body)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes")
		})
	}
}
