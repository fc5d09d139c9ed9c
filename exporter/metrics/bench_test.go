package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

func benchRequests(b *testing.B, cfg config.Metrics) (*Requests, []*accesslog.Record) {
	m, err := New(cfg, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	records := mix(1024)
	for _, r := range records {
		m.Observe(r)
	}
	return m, records
}

func reportLines(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkObserve: default labels; the mix yields about 50 label sets.
func BenchmarkObserve(b *testing.B) {
	m, records := benchRequests(b, config.Default().Metrics)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Observe(records[i&1023])
	}
	reportLines(b)
}

func BenchmarkObserveRoute(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  config.Metrics
	}{
		{"auto", config.Metrics{Labels: []string{"vhost", "method", "status", "status_class", "route"}, Routes: config.Routes{Auto: true}}},
		{"rules", config.Metrics{Labels: []string{"vhost", "method", "status", "status_class", "route"}, Routes: config.Routes{Auto: true,
			Rules: []config.RouteRule{{Match: `^/api/v\d+/orders/\d+/items$`, Replace: "/api/:version/orders/:id/items"}}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m, records := benchRequests(b, bc.cfg)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m.Observe(records[i&1023])
			}
			reportLines(b)
		})
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	m, records := benchRequests(b, config.Default().Metrics)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Observe(records[i&1023])
			i++
		}
	})
	reportLines(b)
}

func BenchmarkNormalizeRoute(b *testing.B) {
	paths := [][]byte{
		[]byte("/"), []byte("/api/v1/orders/12345"), []byte("/static/app.3f9a2b1c.js"),
		[]byte("/users/550e8400-e29b-41d4-a716-446655440000/avatar"), []byte("/login"),
		[]byte("/blog/how-to-configure-nginx"), []byte("/api/v1/users/77/sessions/3f9a2b1c9d"),
		[]byte("/img/photo-8812.jpg"),
	}
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst = NormalizeRoute(dst[:0], paths[i&7])
	}
	reportLines(b)
}

// BenchmarkClientGolangFloor is what Observe could not go below with
// client_golang's vectors (as it used before our collector): one counter
// and three native+classic histograms, handles already resolved.
func BenchmarkClientGolangFloor(b *testing.B) {
	_, records := benchRequests(b, config.Default().Metrics)
	counter, hists := requestOpts(config.Default().Metrics, defaultBucketFactor)
	lv := []string{"a", "GET", "200", "2xx"}
	c := prometheus.NewCounterVec(counter, config.Default().Metrics.Labels).WithLabelValues(lv...)
	var o [nHists]prometheus.Observer
	for i, h := range hists {
		o[i] = prometheus.NewHistogramVec(h, config.Default().Metrics.Labels).WithLabelValues(lv...)
	}
	observeFour(b, records, c, o[histDuration], o[histUpstream], o[histSize])
}

// BenchmarkCollectorFloor is the same with our collector (collector.go):
// what Observe costs once its series is found. Observe minus this is the
// key and lookup.
func BenchmarkCollectorFloor(b *testing.B) {
	m, records := benchRequests(b, config.Default().Metrics)
	d := m.fams.series([]string{"a", "GET", "200", "2xx"})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := records[i&1023]
		m.fams.observe(d, &line{
			v:  [nHists]float64{r.RequestTime, r.UpstreamResponseTime, float64(r.BodyBytes)},
			ok: [nHists]bool{true, true, true},
		})
	}
	reportLines(b)
}

// BenchmarkClientGolangClassic is client_golang's floor without native
// buckets: the difference to BenchmarkClientGolangFloor is what its
// native-histogram path (a sync.Map per bucket key) costs.
func BenchmarkClientGolangClassic(b *testing.B) {
	_, records := benchRequests(b, config.Default().Metrics)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c"})
	h := func(name string, buckets []float64) prometheus.Histogram {
		x := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Buckets: buckets})
		reg.MustRegister(x)
		return x
	}
	d, u, s := h("d", defaultDurationBuckets), h("u", defaultDurationBuckets), h("s", defaultSizeBuckets)
	observeFour(b, records, c, d, u, s)
}

// observeFour is what Observe does per line once a series is found.
func observeFour(b *testing.B, records []*accesslog.Record, c prometheus.Counter, d, u, s prometheus.Observer) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := records[i&1023]
		c.Inc()
		d.Observe(r.RequestTime)
		u.Observe(r.UpstreamResponseTime)
		s.Observe(float64(r.BodyBytes))
	}
	reportLines(b)
}

// BenchmarkObserveExemplars: every line carries a request id; with exemplars
// on, a series takes one per second, so the cost per line should be the
// same as with them off. Compare the two in one run.
func BenchmarkObserveExemplars(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			cfg := config.Default().Metrics
			cfg.Exemplars = on
			m, records := benchRequests(b, cfg)
			// Lines carry their own time, as every nginx format here logs one.
			start := time.Date(2025, 10, 10, 13, 55, 36, 0, time.UTC)
			for i, r := range records {
				r.RequestID = []byte("5f0c6a1d9e2b4c3a8f7e6d5c4b3a2910")
				r.Time = start.Add(time.Duration(i) * time.Millisecond)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m.Observe(records[i&1023])
			}
			reportLines(b)
		})
	}
}
