// Package metrics turns parsed access-log Records into Prometheus series:
// request counters and latency/size histograms (classic and native buckets in
// one series), with optional route, upstream, host and variable labels, and a
// per-family cardinality limit.
//
// The hot path (Observe) resolves a line's label set to cached series handles
// with one lock-free lookup and allocates nothing; see docs/metrics.md for the
// metrics themselves.
package metrics

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// Metric family names; a contract with rules and dashboards.
const (
	RequestsTotal    = "accesslog_http_requests_total"
	RequestDuration  = "accesslog_http_request_duration_seconds"
	UpstreamDuration = "accesslog_http_upstream_duration_seconds"
	ResponseSize     = "accesslog_http_response_size_bytes"
	SeriesOverflow   = "accesslog_exporter_series_overflow_total"
	ExemplarsInvalid = "accesslog_exporter_exemplars_invalid_total"
	NginxRequests    = "nginx_http_requests_total"
	NginxDuration    = "nginx_http_request_duration_seconds"
)

// Defaults, used when the config leaves a field at its zero value.
var (
	defaultDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	defaultSizeBuckets     = []float64{100, 1000, 1e4, 1e5, 1e6, 1e7, 1e8}
	// nginx-lua-prometheus's DEFAULT_BUCKETS, so that quantiles computed from
	// the compat histogram match what the Lua module reported.
	nginxBuckets = []float64{0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 10}
)

const (
	defaultMaxSeries    = 10000
	defaultBucketFactor = 1.1
	// Native histograms: at most 160 populated buckets per series; past that
	// the histogram is reset (at most once an hour) or its resolution halved.
	// 160 buckets at factor 1.1 cover about seven decades.
	nativeMaxBuckets       = 160
	nativeMinResetDuration = time.Hour
)

// Option changes how New builds Requests.
type Option func(*options)

type options struct {
	defaultVHost func(*accesslog.Format) string
}

// DefaultVHost sets the vhost label of lines that log no host, per format
// (config input.default_vhost and formats[].default_vhost). fn is called once
// per Format, never per line; f is nil for a Record without a Format. Without
// this option, or when fn returns "", such lines get vhost="unknown".
func DefaultVHost(fn func(f *accesslog.Format) string) Option {
	return func(o *options) { o.defaultVHost = fn }
}

// Requests is the set of request metrics. Observe is safe for concurrent use.
type Requests struct {
	dims    []dim // series key: the request labels, then what compat needs
	nLabels int   // dims[:nLabels] are the request metrics' labels
	// defaultKey: dims are the default labels, for putDefaultKey.
	defaultKey bool
	vars       []string // variable names of var_NAME labels
	hasVar     bool
	compat     bool
	// exemplars attaches trace or request ids to the latency histograms.
	exemplars bool
	compatV   int // dims index of the vhost for compat metrics
	compatS   int // dims index of the status for compat metrics

	// fams is the request counter and the three request histograms.
	fams     *requestFamilies
	nginxReq *prometheus.CounterVec
	nginxDur *prometheus.HistogramVec
	overflow [6]prometheus.Counter // by family, in famRequests.. order
	// exTooLong and exBadUTF8 count exemplar ids cut to fit and dropped.
	exTooLong, exBadUTF8 prometheus.Counter

	router *router
	vhosts *vhostList // nil: every vhost keeps its name
	series seriesCache
	// seed hashes series keys: the runtime's hash (AES-based where the
	// CPU has it) costs half of xxhash's on keys this short.
	seed maphash.Seed
	// folded holds the label sets past max_series: unbounded labels
	// __other__, method and status kept (see appendKey).
	folded seriesCache
	other  *series // every label __other__: past the folded bound too
	once   sync.Once

	defaultVHost func(*accesslog.Format) string
	formats      atomic.Pointer[[]*formatInfo]
	// firstFormat is formats' first, most lines' format (often the only
	// one), for a check without a call; before any, a Format of no Record.
	firstFormat atomic.Pointer[formatInfo]
	formatsMu   sync.Mutex
}

const (
	famRequests = iota
	famDuration
	famUpstream
	famSize
	famNginxRequests
	famNginxDuration
)

// New builds the request metrics described by cfg and registers them on reg.
// cfg is normally config.Default().Metrics with the file laid over it; as in
// the file, an empty Labels means series without labels. Zero MaxSeries,
// NativeHistogramBucketFactor and empty bucket lists take the defaults.
func New(cfg config.Metrics, reg prometheus.Registerer, opts ...Option) (*Requests, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dims, vars, err := parseLabels(cfg.Labels)
	if err != nil {
		return nil, err
	}
	rules, err := compileRules(cfg.Routes.Rules)
	if err != nil {
		return nil, err
	}
	vhosts, err := newVHostList(cfg.VHosts)
	if err != nil {
		return nil, err
	}
	maxSeries := cfg.MaxSeries
	if maxSeries <= 0 {
		maxSeries = defaultMaxSeries
	}
	factor := cfg.NativeHistogramBucketFactor
	if factor <= 1 {
		factor = defaultBucketFactor
	}
	m := &Requests{
		nLabels:      len(dims),
		vars:         vars,
		hasVar:       len(vars) > 0,
		compat:       cfg.NginxCompat,
		exemplars:    cfg.Exemplars,
		compatV:      -1,
		compatS:      -1,
		router:       newRouter(rules, cfg.Routes.Auto),
		vhosts:       vhosts,
		defaultVHost: o.defaultVHost,
	}
	m.seed = maphash.MakeSeed()
	m.firstFormat.Store(&formatInfo{f: new(accesslog.Format)})
	m.series.init(int64(maxSeries))
	m.folded.init(maxFolded)
	if m.compat {
		dims = m.compatDims(dims)
	}
	m.dims = dims
	m.defaultKey = isDefaultKey(dims)
	names := make([]string, m.nLabels)
	for i := range names {
		names[i] = dims[i].name
	}

	collectors := m.newFamilies(cfg, names, factor)
	if err := registerAll(reg, collectors); err != nil {
		return nil, err
	}
	return m, nil
}

// requestOpts is the request counter and histograms as client_golang
// options: our collector exposes what a CounterVec and HistogramVecs built
// from them would (see collector.go).
func requestOpts(cfg config.Metrics, factor float64) (prometheus.CounterOpts, [nHists]prometheus.HistogramOpts) {
	return prometheus.CounterOpts{
			Name: RequestsTotal,
			Help: "Requests logged, one per access-log line.",
		}, [nHists]prometheus.HistogramOpts{
			histDuration: histogramOpts(RequestDuration,
				"Request processing time from $request_time: first byte read from the client to last byte written, in seconds.",
				orDefault(cfg.Buckets.RequestDuration, defaultDurationBuckets), factor),
			histUpstream: histogramOpts(UpstreamDuration,
				"Time spent waiting for upstreams from $upstream_response_time, summed over all upstreams tried, in seconds.",
				orDefault(cfg.Buckets.UpstreamDuration, defaultDurationBuckets), factor),
			histSize: histogramOpts(ResponseSize,
				"Response body size from $body_bytes_sent, in bytes.",
				orDefault(cfg.Buckets.ResponseSize, defaultSizeBuckets), factor),
		}
}

// newFamilies builds the request families (and the compatible ones when
// on) over the label names, with the overflow and exemplar counters.
func (m *Requests) newFamilies(cfg config.Metrics, names []string, factor float64) []prometheus.Collector {
	counter, hists := requestOpts(cfg, factor)
	m.fams = newRequestFamilies(counter, hists, names, realClock)
	overflowVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: SeriesOverflow,
		Help: "Lines whose label set was new after the family reached max_series, counted with vhost, route, upstream, host and var_ labels folded into __other__.",
	}, []string{"metric"})
	exemplarsVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ExemplarsInvalid,
		Help: "Exemplar ids (trace or request id) that did not fit an exemplar: too_long ones were cut to 128 runes with their label name, invalid_utf8 ones were dropped.",
	}, []string{"reason"})
	m.exTooLong = exemplarsVec.WithLabelValues("too_long")
	m.exBadUTF8 = exemplarsVec.WithLabelValues("invalid_utf8")
	collectors := []prometheus.Collector{m.fams, overflowVec, exemplarsVec}
	families := []string{RequestsTotal, RequestDuration, UpstreamDuration, ResponseSize}
	if m.compat {
		m.nginxReq = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NginxRequests,
			Help: "Number of HTTP requests (nginx-lua-prometheus compatible).",
		}, []string{"host", "status"})
		// Classic buckets only: a scrape that accepts native histograms
		// would otherwise drop the _bucket series existing rules query.
		m.nginxDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NginxDuration,
			Help:    "HTTP request latency (nginx-lua-prometheus compatible).",
			Buckets: nginxBuckets,
		}, []string{"host"})
		collectors = append(collectors, m.nginxReq, m.nginxDur)
		families = append(families, NginxRequests, NginxDuration)
	}
	for i, f := range families {
		m.overflow[i] = overflowVec.WithLabelValues(f)
	}
	return collectors
}

// compatDims finds the vhost and status the nginx-lua-prometheus families
// need among the label dimensions, adding each one missing (kept apart:
// only the compatible families carry it).
func (m *Requests) compatDims(dims []dim) []dim {
	for i, d := range dims {
		switch d.kind {
		case labelVHost:
			m.compatV = i
		case labelStatus:
			m.compatS = i
		}
	}
	if m.compatV < 0 {
		m.compatV = len(dims)
		dims = append(dims, dim{kind: labelVHost, name: "vhost"})
	}
	if m.compatS < 0 {
		m.compatS = len(dims)
		dims = append(dims, dim{kind: labelStatus, name: "status"})
	}
	return dims
}

// registerAll registers every collector or none.
func registerAll(reg prometheus.Registerer, collectors []prometheus.Collector) error {
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			for _, r := range collectors[:i] {
				reg.Unregister(r)
			}
			return fmt.Errorf("metrics: register request metrics: %w", err)
		}
	}
	return nil
}

func histogramOpts(name, help string, buckets []float64, factor float64) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Name:                            name,
		Help:                            help,
		Buckets:                         buckets,
		NativeHistogramBucketFactor:     factor,
		NativeHistogramMaxBucketNumber:  nativeMaxBuckets,
		NativeHistogramMinResetDuration: nativeMinResetDuration,
	}
}

func orDefault(b, def []float64) []float64 {
	if len(b) == 0 {
		return def
	}
	return b
}

// Observe counts one parsed line. Values of -1 (not logged) are not observed.
// It allocates nothing once the line's label set has been seen.
func (m *Requests) Observe(r *accesslog.Record) {
	s := m.seriesOf(r)

	l := line{
		v:  [nHists]float64{r.RequestTime, r.UpstreamResponseTime, float64(r.BodyBytes)},
		ok: [nHists]bool{r.RequestTime >= 0, r.UpstreamResponseTime >= 0, r.BodyBytes >= 0},
	}
	// An exemplar links a latency bucket to the very line (and trace) in
	// Loki. Building it allocates, so each series takes at most one per
	// exemplarInterval; the common line pays one atomic load.
	if name, id := exemplarID(r); id != nil && m.exemplars && s.exemplarDue(r.Time) {
		m.lineExemplars(name, id, &l)
	}
	m.fams.observe(s.data, &l)
	if s.overflow {
		m.overflow[famRequests].Inc()
		for i, ok := range l.ok {
			if ok {
				m.overflow[famDuration+i].Inc()
			}
		}
	}
	if m.compat {
		s.nginxReq.Inc()
		if s.overflow {
			m.overflow[famNginxRequests].Inc()
		}
		if v := r.RequestTime; v >= 0 {
			s.observer(&s.nginxDur, m.nginxDur, s.nginxHost).Observe(v)
			if s.overflow {
				m.overflow[famNginxDuration].Inc()
			}
		}
	}
}

// lineExemplars sets l's exemplars of the id name=id, out of Observe's
// code: it runs at most once per series per exemplarInterval.
func (m *Requests) lineExemplars(name string, id []byte, l *line) {
	if labels := m.exemplar(name, id); labels != nil {
		now := m.fams.clock.now()
		for _, i := range [...]int{histDuration, histUpstream} {
			if l.ok[i] {
				l.ex[i] = newExemplar(l.v[i], now, labels)
			}
		}
	}
}

// format returns what is cached for f: a copy-on-write list scanned by
// pointer, since a pipeline has a handful of formats.
func (m *Requests) format(f *accesslog.Format) *formatInfo {
	if p := m.formats.Load(); p != nil {
		for _, fi := range *p {
			if fi.f == f {
				return fi
			}
		}
	}
	m.formatsMu.Lock()
	defer m.formatsMu.Unlock()
	var list []*formatInfo
	if p := m.formats.Load(); p != nil {
		for _, fi := range *p {
			if fi.f == f {
				return fi
			}
		}
		// Formats are rebuilt on reload; drop old ones rather than grow.
		if len(*p) < 64 {
			list = append(list, *p...)
		}
	}
	vhost := unknown
	if m.defaultVHost != nil {
		if v := m.defaultVHost(f); v != "" {
			vhost = v
		}
	}
	fi := &formatInfo{f: f, vhostKey: binary.AppendUvarint(nil, uint64(len(vhost))), slots: make([]int, len(m.vars))}
	fi.vhostKey = append(fi.vhostKey, vhost...)
	if len(vhost) < keySlack {
		fi.vhostFixed, fi.vhostShort = newFixedKey(vhost), true
	}
	for i, v := range m.vars {
		fi.slots[i] = -1
		if f != nil {
			fi.slots[i] = f.Index(v)
		}
	}
	list = append(list, fi)
	m.formats.Store(&list)
	m.firstFormat.Store(list[0])
	return fi
}

// series is the handles of one label set. Its histograms are exposed from
// their first observation on, so that a format without
// $upstream_response_time does not expose empty upstream histograms for
// every label set.
type series struct {
	key       string
	hash      uint64 // of key, in its seriesCache
	overflow  bool
	labels    []string // request metric label values
	nginxHost []string // compat histogram label value
	data      *seriesData
	nginxReq  prometheus.Counter
	nginxDur  atomic.Pointer[observer]

	nextExemplar atomic.Int64 // unix nanoseconds; see exemplarDue
}

type observer struct{ prometheus.Observer }

// exemplarInterval is the least time between two exemplars of one series:
// enough for Grafana to show one per bucket per scrape.
const exemplarInterval = time.Second

// exemplarDue reports whether this series may take an exemplar now, and if
// so claims the slot. The clock is the line's own time when it has one: it
// advances with the traffic, costs nothing to read, and its one-second
// resolution is the interval anyway.
func (s *series) exemplarDue(lineTime time.Time) bool {
	var now int64
	if lineTime.IsZero() {
		now = time.Now().UnixNano()
	} else {
		now = lineTime.UnixNano()
	}
	next := s.nextExemplar.Load()
	return now >= next && s.nextExemplar.CompareAndSwap(next, now+int64(exemplarInterval))
}

// exemplarID is the exemplar label of a line: its trace id (what Grafana
// follows to Tempo and the Loki derived field matches), else its request id.
func exemplarID(r *accesslog.Record) (string, []byte) {
	if len(r.TraceID) > 0 {
		return "trace_id", r.TraceID
	}
	if len(r.RequestID) > 0 && !(len(r.RequestID) == 1 && r.RequestID[0] == '-') {
		return "request_id", r.RequestID
	}
	return "", nil
}

// exemplar builds the exemplar labels of id, made to fit what exemplars may
// hold (client_golang panics on label sets over prometheus.ExemplarMaxRunes
// runes, names and values together, or not valid UTF-8; OpenMetrics has the
// same bound), and ids come straight from the line. A long id is cut (its
// prefix still finds the line in the log store); one that is not UTF-8
// cannot be matched against anything and is dropped. It runs at most once
// per series per exemplarInterval.
func (m *Requests) exemplar(name string, id []byte) []*dto.LabelPair {
	if !utf8.Valid(id) {
		m.exBadUTF8.Inc()
		return nil
	}
	max := prometheus.ExemplarMaxRunes - utf8.RuneCountInString(name)
	if utf8.RuneCount(id) > max {
		m.exTooLong.Inc()
		id = cutRunes(id, max)
	}
	return []*dto.LabelPair{{Name: proto.String(name), Value: proto.String(string(id))}}
}

// cutRunes returns the first n runes of the valid UTF-8 b.
func cutRunes(b []byte, n int) []byte {
	for i := range string(b) {
		if n == 0 {
			return b[:i]
		}
		n--
	}
	return b
}

func (s *series) observer(p *atomic.Pointer[observer], vec *prometheus.HistogramVec, labels []string) prometheus.Observer {
	if o := p.Load(); o != nil {
		return o.Observer
	}
	// Racing creators get the same child from the vec; either store is fine.
	o := &observer{Observer: vec.WithLabelValues(labels...)}
	p.Store(o)
	return o.Observer
}

// maxFolded bounds the folded label sets. Their values come from fixed sets
// (18 methods, 501 statuses), and real traffic shows a few dozen; past the
// bound every label is __other__.
const maxFolded = 1000

// lookup returns the series of key, creating it while under the limit, and
// past the limit the series of r's folded label set (see putKey).
func (m *Requests) lookup(key []byte, r *accesslog.Record) *series {
	h := maphash.Bytes(m.seed, key)
	if s := m.series.get(h, key); s != nil {
		return s
	}
	if !m.series.full() {
		if s := m.series.add(h, key, m, false); s != nil {
			return s
		}
	}
	return m.foldedSeries(r)
}

// foldedSeries is lookup past the limit.
func (m *Requests) foldedSeries(r *accesslog.Record) *series {
	var kb [keyLarge]byte
	key := m.longKey(kb[:], r, true)
	h := maphash.Bytes(m.seed, key)
	if s := m.folded.get(h, key); s != nil {
		return s
	}
	if !m.folded.full() {
		if s := m.folded.add(h, key, m, true); s != nil {
			return s
		}
	}
	return m.otherSeries()
}

func (m *Requests) otherSeries() *series {
	m.once.Do(func() {
		vals := make([]string, len(m.dims))
		for i := range vals {
			vals[i] = overflow
		}
		m.other = m.build(vals)
		m.other.overflow = true
	})
	return m.other
}

// newSeries decodes key back into label values; this is the only place
// label strings are made. A folded series counts its lines as overflow.
func (m *Requests) newSeries(key []byte, folded bool) *series {
	vals := make([]string, 0, len(m.dims))
	k := key
	for len(k) > 0 {
		n, w := binary.Uvarint(k)
		v := k[w : w+int(n)]
		k = k[w+int(n):]
		s := string(v)
		if !utf8.ValidString(s) {
			// Prometheus label values must be UTF-8; a raw log is not.
			s = strings.ToValidUTF8(s, "\uFFFD")
		}
		vals = append(vals, s)
	}
	s := m.build(vals)
	s.key = string(key)
	s.overflow = folded
	return s
}

func (m *Requests) build(vals []string) *series {
	s := &series{labels: vals[:m.nLabels]}
	s.data = m.fams.series(s.labels)
	if m.compat {
		s.nginxReq = m.nginxReq.WithLabelValues(vals[m.compatV], vals[m.compatS])
		s.nginxHost = vals[m.compatV : m.compatV+1]
	}
	return s
}

// seriesCache maps a label-set key to its series. Reads are one atomic load
// and a probe of an open-addressed table in a shard chosen by the hash
// (cheaper than a Go map's lookup); writers copy the shard's table, which
// is cheap because they are bounded by the series limit.
type seriesCache struct {
	shards [seriesShards]seriesShard
	n      atomic.Int64
	max    int64
}

const seriesShards = 64

type seriesShard struct {
	t  atomic.Pointer[seriesTable]
	mu sync.Mutex
	_  [48]byte // keep shards on separate cache lines
}

// seriesTable holds series by hash with linear probing, at most half
// full. It is never written once published.
type seriesTable struct {
	slots []*series // a power of two of them
	n     int
}

func (c *seriesCache) init(max int64) {
	c.max = max
	for i := range c.shards {
		c.shards[i].t.Store(&seriesTable{slots: make([]*series, 8)})
	}
}

func (c *seriesCache) get(h uint64, key []byte) *series {
	t := c.shards[h%seriesShards].t.Load()
	mask := uint64(len(t.slots) - 1)
	// The shard took the hash's low bits; the slot takes the next ones.
	for i := h / seriesShards & mask; ; i = (i + 1) & mask {
		if s := t.slots[i]; s == nil || s.hash == h && s.key == string(key) {
			return s
		}
	}
}

func (t *seriesTable) insert(s *series) {
	mask := uint64(len(t.slots) - 1)
	i := s.hash / seriesShards & mask
	for t.slots[i] != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = s
	t.n++
}

func (c *seriesCache) full() bool { return c.n.Load() >= c.max }

// add inserts the series of key unless another writer did first. It returns
// nil when the limit was reached meanwhile.
func (c *seriesCache) add(h uint64, key []byte, m *Requests, folded bool) *series {
	sh := &c.shards[h%seriesShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s := c.get(h, key); s != nil {
		return s
	}
	if c.n.Add(1) > c.max {
		c.n.Add(-1)
		return nil
	}
	s := m.newSeries(key, folded)
	s.hash = h
	old := sh.t.Load()
	size := len(old.slots)
	if 2*(old.n+1) > size {
		size *= 2
	}
	next := &seriesTable{slots: make([]*series, size)}
	for _, x := range old.slots {
		if x != nil {
			next.insert(x)
		}
	}
	next.insert(s)
	sh.t.Store(next)
	return s
}
