package metrics

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// rec builds a Record as the parser would, with everything else "not logged".
func rec(vhost, method, path string, status int, reqTime, upTime float64, body int64) *accesslog.Record {
	return &accesslog.Record{
		VHost:                []byte(vhost),
		Method:               []byte(method),
		Path:                 []byte(path),
		Status:               status,
		RequestTime:          reqTime,
		UpstreamResponseTime: upTime,
		BodyBytes:            body,
		BytesSent:            -1,
		UpstreamConnectTime:  -1,
		UpstreamHeaderTime:   -1,
	}
}

// defaults is the metrics section of a config with no file.
func defaults() config.Metrics { return config.Default().Metrics }

// with returns the defaults changed by f.
func with(f func(*config.Metrics)) config.Metrics {
	c := defaults()
	f(&c)
	return c
}

func newRequests(t testing.TB, cfg config.Metrics, opts ...Option) (*Requests, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := New(cfg, reg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg
}

func gather(t testing.TB, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// labelKey renders a metric's labels as "a=x,b=y", sorted by name as the
// registry sorts them.
func labelKey(m *dto.Metric) string {
	var parts []string
	for _, lp := range m.GetLabel() {
		parts = append(parts, lp.GetName()+"="+lp.GetValue())
	}
	return strings.Join(parts, ",")
}

// sortedKey puts a hand-written "b=y,a=x" in labelKey's order.
func sortedKey(k string) string {
	parts := strings.Split(k, ",")
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// counters returns counter values by label key.
func counters(t testing.TB, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	if mf := gather(t, reg)[name]; mf != nil {
		for _, m := range mf.GetMetric() {
			out[labelKey(m)] = m.GetCounter().GetValue()
		}
	}
	return out
}

// histograms returns the histograms of a family by label key.
func histograms(t testing.TB, reg prometheus.Gatherer, name string) map[string]*dto.Histogram {
	t.Helper()
	out := map[string]*dto.Histogram{}
	if mf := gather(t, reg)[name]; mf != nil {
		for _, m := range mf.GetMetric() {
			out[labelKey(m)] = m.GetHistogram()
		}
	}
	return out
}

func equalCounts(t *testing.T, got, want map[string]float64) {
	t.Helper()
	sortedWant := map[string]float64{}
	for k, v := range want {
		sortedWant[sortedKey(k)] += v
	}
	want = sortedWant
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if got[k] != want[k] {
			t.Errorf("{%s}: got %v, want %v", k, got[k], want[k])
		}
	}
}

func TestObserveCounts(t *testing.T) {
	tests := []struct {
		name    string
		records []*accesslog.Record
		want    map[string]float64
	}{
		{
			name: "one label set per vhost, method and status",
			records: []*accesslog.Record{
				rec("shop.example", "GET", "/", 200, 0.1, 0.09, 512),
				rec("shop.example", "GET", "/cart", 200, 0.2, 0.19, 1024),
				rec("shop.example", "POST", "/cart", 201, 0.3, 0.29, 64),
				rec("api.example", "GET", "/v1/x", 404, 0.01, -1, 0),
				rec("api.example", "GET", "/v1/x", 503, 0.5, 0.5, 0),
			},
			want: map[string]float64{
				"vhost=shop.example,method=GET,status=200,status_class=2xx":  2,
				"vhost=shop.example,method=POST,status=201,status_class=2xx": 1,
				"vhost=api.example,method=GET,status=404,status_class=4xx":   1,
				"vhost=api.example,method=GET,status=503,status_class=5xx":   1,
			},
		},
		{
			name: "status not logged and out of range are unknown",
			records: []*accesslog.Record{
				rec("a", "GET", "/", 0, -1, -1, -1),
				rec("a", "GET", "/", 99, -1, -1, -1),
				rec("a", "GET", "/", 600, -1, -1, -1),
				rec("a", "GET", "/", 199, -1, -1, -1),
				rec("a", "GET", "/", 599, -1, -1, -1),
			},
			want: map[string]float64{
				"vhost=a,method=GET,status=unknown,status_class=unknown": 3,
				"vhost=a,method=GET,status=199,status_class=1xx":         1,
				"vhost=a,method=GET,status=599,status_class=5xx":         1,
			},
		},
		{
			name: "methods fold into known, other and unknown",
			records: []*accesslog.Record{
				rec("a", "PROPFIND", "/", 207, -1, -1, -1),
				rec("a", "get", "/", 400, -1, -1, -1),
				rec("a", "\x16\x03\x01", "/", 400, -1, -1, -1),
				rec("a", "BREW", "/", 400, -1, -1, -1),
				rec("a", "", "/", 400, -1, -1, -1),
				rec("a", "OPTIONS", "*", 204, -1, -1, -1),
			},
			want: map[string]float64{
				"vhost=a,method=PROPFIND,status=207,status_class=2xx": 1,
				"vhost=a,method=other,status=400,status_class=4xx":    3,
				"vhost=a,method=unknown,status=400,status_class=4xx":  1,
				"vhost=a,method=OPTIONS,status=204,status_class=2xx":  1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newRequests(t, defaults())
			for _, r := range tt.records {
				m.Observe(r)
			}
			equalCounts(t, counters(t, reg, RequestsTotal), tt.want)
		})
	}
}

func TestFoldMethod(t *testing.T) {
	tests := []struct{ in, want string }{
		{"GET", "GET"}, {"HEAD", "HEAD"}, {"POST", "POST"}, {"PUT", "PUT"}, {"DELETE", "DELETE"},
		{"CONNECT", "CONNECT"}, {"OPTIONS", "OPTIONS"}, {"TRACE", "TRACE"}, {"PATCH", "PATCH"},
		{"PROPFIND", "PROPFIND"}, {"PROPPATCH", "PROPPATCH"}, {"MKCOL", "MKCOL"}, {"COPY", "COPY"},
		{"MOVE", "MOVE"}, {"LOCK", "LOCK"}, {"UNLOCK", "UNLOCK"},
		{"", "unknown"}, {"get", "other"}, {"GETT", "other"}, {"PRI", "other"}, {"\x00", "other"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			if got := foldMethod([]byte(tt.in)); got != tt.want {
				t.Errorf("foldMethod(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestStatusClass(t *testing.T) {
	tests := []struct {
		status      int
		class, code string
	}{
		{0, "unknown", "unknown"}, {-1, "unknown", "unknown"}, {99, "unknown", "unknown"},
		{100, "1xx", "100"}, {101, "1xx", "101"}, {200, "2xx", "200"}, {204, "2xx", "204"},
		{301, "3xx", "301"}, {399, "3xx", "399"}, {404, "4xx", "404"}, {444, "4xx", "444"},
		{499, "4xx", "499"}, {500, "5xx", "500"}, {504, "5xx", "504"}, {599, "5xx", "599"},
		{600, "unknown", "unknown"}, {999, "unknown", "unknown"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			if got := statusClass(tt.status); got != tt.class {
				t.Errorf("statusClass(%d) = %q, want %q", tt.status, got, tt.class)
			}
			if got := string(appendStatus(nil, tt.status)); got != tt.code {
				t.Errorf("appendStatus(%d) = %q, want %q", tt.status, got, tt.code)
			}
		})
	}
}

func TestHistograms(t *testing.T) {
	m, reg := newRequests(t, config.Metrics{Labels: []string{"vhost"}})
	for _, r := range []*accesslog.Record{
		rec("a", "GET", "/", 200, 0.25, 0.125, 100),
		rec("a", "GET", "/", 200, 0.5, -1, 0),  // no upstream: served locally
		rec("a", "GET", "/", 200, -1, 1.5, -1), // neither request time nor body logged
		rec("a", "GET", "/", 200, 0, 0, 2000),  // zeros are values
		rec("b", "GET", "/", 200, -1, -1, -1),  // nothing to observe at all
	} {
		m.Observe(r)
	}
	tests := []struct {
		family string
		count  map[string]uint64
		sum    map[string]float64
	}{
		{RequestDuration, map[string]uint64{"vhost=a": 3}, map[string]float64{"vhost=a": 0.75}},
		{UpstreamDuration, map[string]uint64{"vhost=a": 3}, map[string]float64{"vhost=a": 1.625}},
		{ResponseSize, map[string]uint64{"vhost=a": 3}, map[string]float64{"vhost=a": 2100}},
	}
	for _, tt := range tests {
		t.Run(tt.family, func(t *testing.T) {
			got := histograms(t, reg, tt.family)
			if len(got) != len(tt.count) {
				t.Errorf("series %v, want only %v (a line with -1 creates no histogram)", keys(got), tt.count)
			}
			for k, c := range tt.count {
				h := got[k]
				if h.GetSampleCount() != c || h.GetSampleSum() != tt.sum[k] {
					t.Errorf("{%s}: count %d sum %v, want %d and %v", k, h.GetSampleCount(), h.GetSampleSum(), c, tt.sum[k])
				}
			}
		})
	}
	if c := counters(t, reg, RequestsTotal); c["vhost=a"] != 4 || c["vhost=b"] != 1 {
		t.Errorf("requests %v, want a=4 b=1", c)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestNativeAndClassicBuckets(t *testing.T) {
	m, reg := newRequests(t, config.Metrics{Labels: []string{"vhost"}, Buckets: config.Buckets{RequestDuration: []float64{0.1, 1}}})
	for _, v := range []float64{0.05, 0.2, 0.2, 3} {
		m.Observe(rec("a", "GET", "/", 200, v, v, 10))
	}
	for _, family := range []string{RequestDuration, UpstreamDuration, ResponseSize} {
		t.Run(family, func(t *testing.T) {
			h := histograms(t, reg, family)["vhost=a"]
			if h == nil {
				t.Fatal("no series")
			}
			if len(h.GetBucket()) == 0 {
				t.Error("no classic buckets")
			}
			if h.Schema == nil || len(h.GetPositiveSpan()) == 0 || len(h.GetPositiveDelta()) == 0 {
				t.Errorf("no native buckets: schema %v spans %v", h.Schema, h.GetPositiveSpan())
			}
			// factor 1.1 => schema 3 (2^(2^-3) = 1.09)
			if h.GetSchema() != 3 {
				t.Errorf("schema %d, want 3 for factor 1.1", h.GetSchema())
			}
		})
	}
	h := histograms(t, reg, RequestDuration)["vhost=a"]
	want := map[float64]uint64{0.1: 1, 1: 3}
	for _, b := range h.GetBucket() {
		if b.GetCumulativeCount() != want[b.GetUpperBound()] {
			t.Errorf("le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[b.GetUpperBound()])
		}
	}
	if len(h.GetBucket()) != 2 {
		t.Errorf("configured buckets not used: %d buckets", len(h.GetBucket()))
	}
}

func TestDefaultVHost(t *testing.T) {
	shop, api := &accesslog.Format{}, &accesslog.Format{}
	defaults := map[*accesslog.Format]string{shop: "shop.example", api: "api.example"}
	calls := 0
	m, reg := newRequests(t, config.Metrics{Labels: []string{"vhost"}}, DefaultVHost(func(f *accesslog.Format) string {
		calls++
		return defaults[f]
	}))
	tests := []struct {
		name   string
		format *accesslog.Format
		vhost  string
	}{
		{"format default", shop, ""},
		{"format default again", shop, ""},
		{"other format's default", api, ""},
		{"logged vhost wins", shop, "logged.example"},
		{"no format", nil, ""},
		{"format without default", &accesslog.Format{}, ""},
	}
	for _, tt := range tests {
		r := rec(tt.vhost, "GET", "/", 200, -1, -1, -1)
		r.Format = tt.format
		m.Observe(r)
	}
	equalCounts(t, counters(t, reg, RequestsTotal), map[string]float64{
		"vhost=shop.example":   2,
		"vhost=api.example":    1,
		"vhost=logged.example": 1,
		"vhost=unknown":        2,
	})
	if calls != 4 {
		t.Errorf("default vhost func called %d times, want once per format (4)", calls)
	}
}

func TestOptionalLabels(t *testing.T) {
	r := rec("a", "GET", "/api/v1/orders/12345", 200, -1, -1, -1)
	r.UpstreamAddr = []byte("10.0.0.7:8080")
	r.Host = []byte("web-3")
	r.Format = &accesslog.Format{}
	bare := rec("a", "GET", "", 200, -1, -1, -1)
	tests := []struct {
		name   string
		labels []string
		auto   bool
		record *accesslog.Record
		want   string
	}{
		{"route auto", []string{"route"}, true, r, "route=/api/v1/orders/:id"},
		{"route raw", []string{"route"}, false, r, "route=/api/v1/orders/12345"},
		{"route of no path", []string{"route"}, true, bare, "route=unknown"},
		{"upstream", []string{"upstream"}, true, r, "upstream=10.0.0.7:8080"},
		{"upstream none", []string{"upstream"}, true, bare, "upstream=-"},
		{"host", []string{"host"}, true, r, "host=web-3"},
		{"host of raw line", []string{"host"}, true, bare, "host=-"},
		{"var not logged by the format", []string{"var_http_x_tenant"}, true, r, "var_http_x_tenant=-"},
		{"var without format", []string{"var_http_x_tenant"}, true, bare, "var_http_x_tenant=-"},
		{"order follows config", []string{"status", "route", "method"}, true, r, "status=200,route=/api/v1/orders/:id,method=GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newRequests(t, config.Metrics{Labels: tt.labels, Routes: config.Routes{Auto: tt.auto}})
			m.Observe(tt.record)
			equalCounts(t, counters(t, reg, RequestsTotal), map[string]float64{tt.want: 1})
		})
	}
}

func TestRouteRules(t *testing.T) {
	m, reg := newRequests(t, config.Metrics{
		Labels: []string{"route"},
		Routes: config.Routes{Auto: true, Rules: []config.RouteRule{
			{Match: `^/shop/[a-z0-9-]+/reviews`, Replace: "/shop/:product/reviews"},
			{Match: `^/shop/`, Replace: "/never/"}, // the first match wins
			{Match: `^/u/([a-z]+)$`, Replace: "/u/:name"},
			{Match: `^/keep/`, Replace: "/keep/"},
		}},
	})
	tests := []struct{ path, want string }{
		{"/shop/blue-widget-2000/reviews/17", "/shop/:product/reviews/:id"}, // rule, then auto
		{"/u/alice", "/u/:name"},
		{"/u/alice", "/u/:name"}, // cached
		{"/keep/12345", "/keep/:id"},
		{"/other/12345", "/other/:id"}, // no rule: auto only
	}
	want := map[string]float64{}
	for _, tt := range tests {
		m.Observe(rec("a", "GET", tt.path, 200, -1, -1, -1))
		want["route="+tt.want]++
	}
	equalCounts(t, counters(t, reg, RequestsTotal), want)
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Metrics
		want string
	}{
		{"unknown label", config.Metrics{Labels: []string{"vhost", "path"}}, `unknown label "path"`},
		{"duplicate label", config.Metrics{Labels: []string{"vhost", "vhost"}}, `"vhost" listed twice`},
		{"empty var name", config.Metrics{Labels: []string{"var_"}}, `unknown label "var_"`},
		{"bad var name", config.Metrics{Labels: []string{"var_a-b"}}, `unknown label "var_a-b"`},
		{"bad rule", config.Metrics{Routes: config.Routes{Rules: []config.RouteRule{{Match: "("}}}}, "routes.rules[0].match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, prometheus.NewRegistry())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want error containing %q", err, tt.want)
			}
		})
	}
	t.Run("registered twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if _, err := New(config.Metrics{}, reg); err != nil {
			t.Fatal(err)
		}
		if _, err := New(config.Metrics{}, reg); err == nil {
			t.Error("second New on one registry: no error")
		}
	})
}

func TestNoLabels(t *testing.T) {
	m, reg := newRequests(t, config.Metrics{NginxCompat: true})
	m.Observe(rec("a", "GET", "/", 200, 0.5, -1, -1))
	m.Observe(rec("b", "PUT", "/x", 404, 0.5, -1, -1))
	equalCounts(t, counters(t, reg, RequestsTotal), map[string]float64{"": 2})
	// compat still has its own labels
	equalCounts(t, counters(t, reg, NginxRequests), map[string]float64{"host=a,status=200": 1, "host=b,status=404": 1})
}

func TestInvalidUTF8(t *testing.T) {
	m, reg := newRequests(t, config.Metrics{Labels: []string{"vhost"}})
	m.Observe(rec("caf\xe9.example", "GET", "/", 200, -1, -1, -1))
	equalCounts(t, counters(t, reg, RequestsTotal), map[string]float64{"vhost=caf\uFFFD.example": 1})
}

func TestNginxCompat(t *testing.T) {
	records := []*accesslog.Record{
		rec("shop.example", "GET", "/", 200, 0.25, 0.2, 10),
		rec("shop.example", "POST", "/", 200, 0.5, 0.4, 10),
		rec("shop.example", "GET", "/", 502, -1, -1, 10),
		rec("api.example", "GET", "/", 200, 1, -1, 10),
	}
	for _, on := range []bool{false, true} {
		for _, labels := range [][]string{nil, {"route"}} {
			t.Run(fmt.Sprintf("compat=%v labels=%v", on, labels), func(t *testing.T) {
				m, reg := newRequests(t, config.Metrics{NginxCompat: on, Labels: labels})
				for _, r := range records {
					m.Observe(r)
				}
				mfs := gather(t, reg)
				if !on {
					for _, name := range []string{NginxRequests, NginxDuration} {
						if mfs[name] != nil {
							t.Errorf("%s exposed with nginx_compat off", name)
						}
					}
					return
				}
				equalCounts(t, counters(t, reg, NginxRequests), map[string]float64{
					"host=shop.example,status=200": 2,
					"host=shop.example,status=502": 1,
					"host=api.example,status=200":  1,
				})
				h := histograms(t, reg, NginxDuration)
				if len(h) != 2 || h["host=shop.example"].GetSampleCount() != 2 || h["host=shop.example"].GetSampleSum() != 0.75 ||
					h["host=api.example"].GetSampleCount() != 1 {
					t.Errorf("nginx histogram %v", h)
				}
				if s := h["host=shop.example"]; len(s.GetBucket()) != len(nginxBuckets) || s.Schema != nil {
					t.Errorf("compat histogram: %d classic buckets, schema %v; want %d and classic only", len(s.GetBucket()), s.Schema, len(nginxBuckets))
				}
			})
		}
	}
}

func TestCardinalityLimit(t *testing.T) {
	const limit, lines = 1000, 1_000_000
	m, reg := newRequests(t, config.Metrics{
		Labels:      []string{"vhost", "method", "route"},
		MaxSeries:   limit,
		NginxCompat: true,
	})
	r := rec("a", "GET", "", 200, 0.01, 0.01, 100)
	path := make([]byte, 0, 32)
	observe := func(from, to int) {
		for i := from; i < to; i++ {
			path = fmt.Appendf(path[:0], "/p/%d", i)
			r.Path = path
			m.Observe(r)
		}
	}
	// Warm up past the limit, then measure: the rest must not grow the heap.
	observe(0, 2*limit)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	observe(2*limit, lines)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if growth := int64(after.HeapAlloc) - int64(before.HeapAlloc); growth > 1<<20 {
		t.Errorf("heap grew %d bytes over %d distinct paths past the limit", growth, lines-2*limit)
	}
	if n := m.series.n.Load(); n != limit {
		t.Errorf("series cache holds %d label sets, want %d", n, limit)
	}
	mfs := gather(t, reg)
	for _, name := range []string{RequestsTotal, RequestDuration, UpstreamDuration, ResponseSize} {
		if n := len(mfs[name].GetMetric()); n > limit+1 {
			t.Errorf("%s: %d series, want <= %d", name, n, limit+1)
		}
	}
	// vhost and route are folded; method, with its fixed set of values, is kept.
	other := counters(t, reg, RequestsTotal)["method=GET,route=__other__,vhost=__other__"]
	if other != lines-limit {
		t.Errorf("folded series counted %v lines, want %d", other, lines-limit)
	}
	overflow := counters(t, reg, SeriesOverflow)
	for _, name := range []string{RequestsTotal, RequestDuration, UpstreamDuration, ResponseSize, NginxRequests, NginxDuration} {
		if got := overflow["metric="+name]; got != lines-limit {
			t.Errorf("overflow{metric=%s} = %v, want %d", name, got, lines-limit)
		}
	}
	// A label set seen before the limit keeps its own series.
	r.Path = []byte("/p/7")
	m.Observe(r)
	if got := counters(t, reg, RequestsTotal)["method=GET,route=/p/7,vhost=a"]; got != 2 {
		t.Errorf("early label set: %v, want 2", got)
	}
}

func TestObserveConcurrent(t *testing.T) {
	m, reg := newRequests(t, config.Metrics{Labels: []string{"vhost", "status", "route"}, Routes: config.Routes{Auto: true}, MaxSeries: 1000})
	const workers, perWorker = 8, 5000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rec("", "GET", "", 0, 0.5, 0.25, 2)
			path := make([]byte, 0, 32)
			for i := range perWorker {
				r.VHost = []byte{'a' + byte(i%4)}
				r.Status = 200 + i%3
				path = fmt.Appendf(path[:0], "/x/%d/y%d", w*perWorker+i, i%10)
				r.Path = path
				m.Observe(r)
			}
		})
	}
	wg.Wait()
	total := 0.0
	for _, v := range counters(t, reg, RequestsTotal) {
		total += v
	}
	if total != workers*perWorker {
		t.Errorf("requests total %v, want %d", total, workers*perWorker)
	}
	var count uint64
	var sum float64
	for _, h := range histograms(t, reg, RequestDuration) {
		count += h.GetSampleCount()
		sum += h.GetSampleSum()
	}
	if count != workers*perWorker || math.Abs(sum-0.5*workers*perWorker) > 1e-6 {
		t.Errorf("duration count %d sum %v, want %d and %v", count, sum, workers*perWorker, 0.5*workers*perWorker)
	}
	if n := len(counters(t, reg, RequestsTotal)); n != 60 { // lcm(4, 3, 10) combinations
		t.Errorf("%d label sets, want 60", n)
	}
}

func TestObserveNoAllocs(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Metrics
	}{
		{"default labels", defaults()},
		{"no labels", config.Metrics{}},
		{"route auto", config.Metrics{Labels: []string{"vhost", "method", "status", "route"}, Routes: config.Routes{Auto: true}}},
		{"route rules", config.Metrics{Labels: []string{"route"}, Routes: config.Routes{Auto: true, Rules: []config.RouteRule{{Match: "^/a/", Replace: "/b/"}}}}},
		{"all labels and compat", config.Metrics{Labels: []string{"vhost", "method", "status", "status_class", "route", "upstream", "host", "var_x"}, NginxCompat: true}},
		{"overflow", with(func(c *config.Metrics) { c.MaxSeries = 1 })},
		{"vhost allow-list", with(func(c *config.Metrics) { c.VHosts = []string{"www.example.com", "~^api\\."} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newRequests(t, tt.cfg)
			records := mix(50)
			for _, r := range records {
				m.Observe(r)
			}
			i := 0
			if n := testing.AllocsPerRun(1000, func() {
				m.Observe(records[i%len(records)])
				i++
			}); n != 0 {
				t.Errorf("Observe allocates %v times per line, want 0", n)
			}
		})
	}
}

// mix is n realistic records: a few vhosts, mostly GET 200, some errors,
// paths with ids.
func mix(n int) []*accesslog.Record {
	vhosts := []string{"www.example.com", "api.example.com", "static.example.com", "admin.example.com", ""}
	methods := []string{"GET", "GET", "GET", "POST", "GET", "PUT", "GET", "HEAD", "DELETE", "GET"}
	statuses := []int{200, 200, 200, 304, 200, 404, 200, 301, 500, 200, 201, 499}
	paths := []string{
		"/", "/api/v1/orders/12345", "/api/v1/orders/12346/items", "/static/app.3f9a2b1c.js",
		"/users/550e8400-e29b-41d4-a716-446655440000/avatar", "/login", "/api/v1/search",
		"/img/photo-8812.jpg", "/healthz", "/api/v2/carts/991/checkout", "/favicon.ico",
		"/blog/how-to-configure-nginx", "/api/v1/users/77/sessions/3f9a2b1c9d", "/assets/main-0a1b2c3d.css",
	}
	out := make([]*accesslog.Record, n)
	format := &accesslog.Format{}
	for i := range out {
		r := rec(vhosts[i%len(vhosts)], methods[i%len(methods)], paths[i%len(paths)], statuses[i%len(statuses)],
			float64(i%97)/100, float64(i%89)/100-0.05, int64(i*137%100000))
		r.Format = format
		r.UpstreamAddr = []byte(fmt.Sprintf("10.0.0.%d:8080", i%3))
		r.Host = []byte("web-1")
		out[i] = r
	}
	return out
}

func TestRouteCacheBounded(t *testing.T) {
	m, _ := newRequests(t, config.Metrics{
		Labels:    []string{"route"},
		MaxSeries: 10,
		Routes:    config.Routes{Rules: []config.RouteRule{{Match: "^/never-matches/", Replace: "/"}}},
	})
	path := make([]byte, 0, 32)
	for i := range 100_000 {
		path = fmt.Appendf(path[:0], "/p/%d", i)
		m.Observe(rec("a", "GET", string(path), 200, -1, -1, -1))
	}
	n := 0
	for i := range m.router.cache.shards {
		n += len(m.router.cache.shards[i].m)
	}
	if n > routeShards*routeShardLimit {
		t.Errorf("route cache holds %d paths, want <= %d", n, routeShards*routeShardLimit)
	}
}

// TestVarLabel goes through the real parser: Record.vars is only filled by it.
func TestVarLabel(t *testing.T) {
	tenant, err := accesslog.Compile("tenant", `$remote_addr [$time_local] "$request" $status $http_x_tenant $scheme`, accesslog.EscapeDefault)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := accesslog.Compile("plain", `$remote_addr [$time_local] "$request" $status`, accesslog.EscapeDefault)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		format *accesslog.Format
		line   string
		want   string
	}{
		{"logged", tenant, `10.0.0.1 [17/May/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 acme https`, "var_http_x_tenant=acme,var_scheme=https"},
		{"logged as dash", tenant, `10.0.0.1 [17/May/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 - http`, "var_http_x_tenant=-,var_scheme=http"},
		{"format without the variables", plain, `10.0.0.1 [17/May/2024:10:00:00 +0000] "GET / HTTP/1.1" 200`, "var_http_x_tenant=-,var_scheme=-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec, err := accesslog.NewDecoder(accesslog.DecoderConfig{Default: tt.format})
			if err != nil {
				t.Fatal(err)
			}
			var r accesslog.Record
			if err := dec.Decode([]byte(tt.line), &r); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			m, reg := newRequests(t, config.Metrics{Labels: []string{"var_http_x_tenant", "var_scheme"}})
			m.Observe(&r)
			m.Observe(&r)
			equalCounts(t, counters(t, reg, RequestsTotal), map[string]float64{tt.want: 2})
		})
	}
}
