package metrics

import (
	"bytes"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// fakeClock is the time both client_golang and our families read in the
// golden test, and the timers of their scheduled resets.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	fn func()
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// afterFunc returns no timer: neither client_golang nor we use it.
func (c *fakeClock) afterFunc(d time.Duration, fn func()) *time.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = append(c.timers, fakeTimer{at: c.t.Add(d), fn: fn})
	return nil
}

func (c *fakeClock) clock() clock { return clock{now: c.now, afterFunc: c.afterFunc} }

// advance moves the time on and, with fire, runs the timers then due, in
// due order. Without, they run late, as on a loaded machine.
func (c *fakeClock) advance(d time.Duration, fire bool) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	if !fire {
		c.mu.Unlock()
		return
	}
	var due []fakeTimer
	c.timers = slices.DeleteFunc(c.timers, func(x fakeTimer) bool {
		if x.at.After(c.t) {
			return false
		}
		due = append(due, x)
		return true
	})
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, x := range due {
		x.fn()
	}
}

// setHook sets client_golang's unexported test hook name (now, afterFunc)
// in opts, a *HistogramOpts or *CounterOpts.
func setHook(t *testing.T, opts any, name string, fn any) {
	t.Helper()
	f := reflect.ValueOf(opts).Elem().FieldByName(name)
	if !f.IsValid() || f.Type() != reflect.TypeOf(fn) {
		t.Fatalf("client_golang's %T has no field %s of type %T: the golden test needs it to share a clock", opts, name, fn)
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(fn))
}

// goldenPair is one set of request families built twice: with
// client_golang's vectors and with our collector, on one fake clock.
type goldenPair struct {
	clock      *fakeClock
	want, got  *prometheus.Registry
	counter    *prometheus.CounterVec
	hists      [nHists]*prometheus.HistogramVec
	fams       *requestFamilies
	labelNames []string
}

func newGoldenPair(t *testing.T, hists [nHists]prometheus.HistogramOpts) *goldenPair {
	p := &goldenPair{
		clock:      newFakeClock(),
		want:       prometheus.NewPedanticRegistry(),
		got:        prometheus.NewPedanticRegistry(),
		labelNames: []string{"vhost", "method", "status", "status_class"},
	}
	counter := prometheus.CounterOpts{Name: RequestsTotal, Help: "Requests logged, one per access-log line."}
	p.fams = newRequestFamilies(counter, hists, p.labelNames, p.clock.clock())
	setHook(t, &counter, "now", p.clock.now)
	p.counter = prometheus.NewCounterVec(counter, p.labelNames)
	p.want.MustRegister(p.counter)
	for i, o := range hists {
		setHook(t, &o, "now", p.clock.now)
		setHook(t, &o, "afterFunc", p.clock.afterFunc)
		p.hists[i] = prometheus.NewHistogramVec(o, p.labelNames)
		p.want.MustRegister(p.hists[i])
	}
	p.got.MustRegister(p.fams)
	return p
}

// observe feeds one line to both: the request, each value with ok set,
// with an exemplar of id on each when id is not "".
func (p *goldenPair) observe(labels []string, v [nHists]float64, ok [nHists]bool, id string) {
	p.counter.WithLabelValues(labels...).Inc()
	l := line{v: v, ok: ok}
	var pairs []*dto.LabelPair
	if id != "" {
		pairs = []*dto.LabelPair{{Name: proto.String("trace_id"), Value: proto.String(id)}}
	}
	for i, h := range p.hists {
		if !ok[i] {
			continue
		}
		o := h.WithLabelValues(labels...)
		if id == "" {
			o.Observe(v[i])
			continue
		}
		o.(prometheus.ExemplarObserver).ObserveWithExemplar(v[i], prometheus.Labels{"trace_id": id})
		l.ex[i] = newExemplar(v[i], p.clock.now(), pairs)
	}
	p.fams.observe(p.fams.series(labels), &l)
}

// exposition formats the metrics endpoint can negotiate (exporter/server
// offers expfmt.DefaultOpenMetricsAcceptedFormats), with every escaping
// scheme, plus OpenMetrics 2.0 which writes native buckets as text. The
// protobuf text formats (for debugging, and slow to write) take one.
func expositionFormats() []expfmt.Format {
	var out []expfmt.Format
	for _, f := range append(expfmt.DefaultOpenMetricsAcceptedFormats(), expfmt.FmtOpenMetrics_2_0_0) {
		for _, e := range []model.EscapingScheme{model.UnderscoreEscaping, model.NoEscaping, model.DotsEscaping, model.ValueEncodingEscaping} {
			out = append(out, f.WithEscapingScheme(e))
			if t := f.FormatType(); t == expfmt.TypeProtoText || t == expfmt.TypeProtoCompact {
				break
			}
		}
	}
	return out
}

func (p *goldenPair) compare(t *testing.T, when string, formats bool) bool {
	t.Helper()
	return compareGathered(t, when, p.want, p.got, formats)
}

// compareGathered gathers both and reports the first difference: the
// families as protos, then (with formats) their encoding in every format,
// OpenMetrics with and without created lines.
func compareGathered(t *testing.T, when string, wantG, gotG prometheus.Gatherer, formats bool) bool {
	t.Helper()
	want, err := wantG.Gather()
	if err != nil {
		t.Fatalf("%s: gather client_golang: %v", when, err)
	}
	got, err := gotG.Gather()
	if err != nil {
		t.Fatalf("%s: gather ours: %v", when, err)
	}
	if len(want) != len(got) {
		t.Errorf("%s: %d families, client_golang has %d", when, len(got), len(want))
		return false
	}
	for i := range want {
		if proto.Equal(want[i], got[i]) {
			continue
		}
		w, g := want[i].GetMetric(), got[i].GetMetric()
		if len(w) != len(g) {
			t.Errorf("%s: %s has %d series, client_golang %d", when, want[i].GetName(), len(g), len(w))
			return false
		}
		for j := range w {
			if !proto.Equal(w[j], g[j]) {
				t.Errorf("%s: %s differs\nclient_golang: %s\nours:          %s", when, want[i].GetName(),
					prototext.Format(w[j]), prototext.Format(g[j]))
				return false
			}
		}
		t.Errorf("%s: %s differs outside its series:\nclient_golang: %s\nours: %s", when, want[i].GetName(),
			prototext.Format(want[i]), prototext.Format(got[i]))
		return false
	}
	if !formats {
		return true
	}
	for _, f := range expositionFormats() {
		opts := [][]expfmt.EncoderOption{nil}
		if f.FormatType() == expfmt.TypeOpenMetrics {
			opts = append(opts, []expfmt.EncoderOption{expfmt.WithCreatedLines()})
		}
		for _, o := range opts {
			wb, gb := encode(t, want, f, o), encode(t, got, f, o)
			if !bytes.Equal(wb, gb) {
				t.Errorf("%s: %q (created lines %v): %d bytes differ from client_golang's %d", when, f, o != nil, len(gb), len(wb))
				return false
			}
			if len(wb) == 0 {
				t.Errorf("%s: %q: nothing encoded", when, f)
			}
		}
	}
	return true
}

func encode(t *testing.T, mfs []*dto.MetricFamily, f expfmt.Format, o []expfmt.EncoderOption) []byte {
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, f, o...)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %q: %v", f, err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			t.Fatalf("close %q: %v", f, err)
		}
	}
	return b.Bytes()
}

// goldenHists is the request histograms as New builds them, with the
// bucket factor, limit and reset interval of a case.
func goldenHists(factor float64, maxBuckets uint32, minReset time.Duration) [nHists]prometheus.HistogramOpts {
	h := [nHists]prometheus.HistogramOpts{
		histogramOpts(RequestDuration, "duration", defaultDurationBuckets, factor),
		histogramOpts(UpstreamDuration, "upstream", defaultDurationBuckets, factor),
		histogramOpts(ResponseSize, "size", defaultSizeBuckets, factor),
	}
	for i := range h {
		h[i].NativeHistogramMaxBucketNumber = maxBuckets
		h[i].NativeHistogramMinResetDuration = minReset
	}
	return h
}

// Value generators. realistic: what access logs hold. wide: every range a
// float64 has, both signs, zero, the zero bucket, infinities, classic and
// native bucket boundaries.
func realisticValue(r *rand.Rand, i int) float64 {
	switch r.IntN(10) {
	case 0:
		return 0
	case 1:
		return float64(r.IntN(100)) / 1000 // ms resolution, as nginx logs
	case 2:
		return defaultDurationBuckets[r.IntN(len(defaultDurationBuckets))]
	case 3:
		return float64(r.IntN(1 << 20)) // sizes
	case 4:
		return math.Round(math.Exp(r.Float64()*25)) * float64(i%2) // sizes up to ~7e10, or 0
	default:
		return math.Round(math.Exp(r.NormFloat64()*1.5-3)*1000) / 1000
	}
}

func wideValue(r *rand.Rand, _ int) float64 {
	sign := 1.0
	if r.IntN(4) == 0 {
		sign = -1
	}
	switch r.IntN(12) {
	case 0:
		return 0
	case 1:
		return sign * math.Ldexp(1, -1074+r.IntN(1074+60)) // subnormals to 2^-1014: zero bucket, and just past it
	case 2:
		return sign * prometheus.DefNativeHistogramZeroThreshold * (1 + float64(r.IntN(3)-1)*1e-15)
	case 3:
		return sign * math.Inf(1)
	case 4:
		return sign * math.MaxFloat64 * (1 - float64(r.IntN(2))*1e-16)
	case 5:
		return sign * math.Ldexp(0.5+r.Float64()/2, r.IntN(2048)-1022) // any exponent
	case 6:
		return sign * math.Ldexp(nativeBounds[3][r.IntN(8)], r.IntN(80)-40) // schema 3 boundaries
	case 7:
		return defaultSizeBuckets[r.IntN(len(defaultSizeBuckets))]
	case 8:
		return math.Nextafter(defaultDurationBuckets[r.IntN(len(defaultDurationBuckets))], math.Inf(int(sign)))
	default:
		return sign * math.Exp(r.NormFloat64()*10)
	}
}

type goldenCase struct {
	name       string
	factor     float64
	maxBuckets uint32
	minReset   time.Duration
	series     int
	lines      int
	value      func(r *rand.Rand, i int) float64
	// step is how far the clock moves after line i.
	step func(r *rand.Rand, i int) time.Duration
	// exemplar is the chance of a line to carry one.
	exemplar float64
	// lateTimers: a due reset timer runs after a line once in 500 lines
	// (else three times in four).
	lateTimers bool
}

func goldenCases() []goldenCase {
	secondly := func(r *rand.Rand, _ int) time.Duration { return time.Duration(r.IntN(2000)) * time.Millisecond }
	return []goldenCase{
		{
			// What New builds: the size histogram passes 160 buckets,
			// halves, and is reset an hour after it was created.
			name: "production options", factor: defaultBucketFactor, maxBuckets: nativeMaxBuckets, minReset: nativeMinResetDuration,
			series: 10, lines: 8000, value: realisticValue, step: secondly, exemplar: 0.2,
		},
		{
			name: "halving to schema -4, no reset", factor: defaultBucketFactor, maxBuckets: nativeMaxBuckets,
			series: 4, lines: 3000, value: wideValue, step: secondly, exemplar: 0.3,
		},
		{
			// The first hour only zeros (no bucket), then wide values:
			// each histogram is past the reset interval when it first
			// passes the limit, so it is reset at once; after that it
			// passes the limit again within the hour, halves, and the
			// scheduled reset comes, often late: passing the limit while
			// it is due and has not run halves again.
			name: "reset at once and scheduled", factor: defaultBucketFactor, maxBuckets: nativeMaxBuckets, minReset: time.Hour,
			series: 6, lines: 5000,
			value: func(r *rand.Rand, i int) float64 {
				if i < 300 {
					return 0
				}
				return wideValue(r, i)
			},
			step: func(r *rand.Rand, i int) time.Duration {
				if i < 300 {
					return 15 * time.Second
				}
				return time.Duration(r.IntN(4000)) * time.Millisecond
			},
			exemplar: 0.1, lateTimers: true,
		},
		{
			// The limit is passed exactly when the reset interval has
			// passed since the histogram was created: it is reset.
			name: "limit passed at exactly the reset interval", factor: defaultBucketFactor, maxBuckets: nativeMaxBuckets, minReset: time.Hour,
			series: 1, lines: 1500, value: wideValue,
			step: func(_ *rand.Rand, i int) time.Duration {
				if i == 0 {
					return time.Hour
				}
				return 0
			},
		},
		{
			name: "no bucket limit, factor 1.01 (schema 6)", factor: 1.01, series: 3, lines: 3000, value: wideValue, step: secondly, exemplar: 0.05,
		},
		{
			// At schema -4 the limit of 40 is still passed, on almost
			// every line: while the scheduled reset is due and has not
			// run, that must not reset at once.
			name: "factor 2 (schema 0), late timers", factor: 2, maxBuckets: 40, minReset: 10 * time.Minute,
			series: 4, lines: 6000, value: wideValue, step: secondly, exemplar: 0.05, lateTimers: true,
		},
		{
			name: "factor 300 (schema -3)", factor: 300, maxBuckets: 20, series: 4, lines: 3000, value: wideValue, step: secondly, exemplar: 0.05,
		},
		{
			// Exemplars on every line, seconds apart: the native ones
			// are replaced by the spread rule, and by age past the TTL.
			name: "exemplar replacement", factor: defaultBucketFactor, maxBuckets: nativeMaxBuckets, minReset: nativeMinResetDuration,
			series: 2, lines: 3000, value: realisticValue,
			step: func(r *rand.Rand, _ int) time.Duration { return time.Duration(r.IntN(20)) * time.Second }, exemplar: 1,
		},
	}
}

func TestGoldenExposition(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			runGolden(t, tc, goldenHists(tc.factor, tc.maxBuckets, tc.minReset))
		})
	}
}

func runGolden(t *testing.T, tc goldenCase, hists [nHists]prometheus.HistogramOpts) {
	r := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
	p := newGoldenPair(t, hists)
	labels := make([][]string, tc.series)
	for i := range labels {
		status := []string{"200", "404", "500", "304"}[i%4]
		labels[i] = []string{fmt.Sprintf("v%d.example.com", i/4), []string{"GET", "POST", "PUT"}[i%3], status, status[:1] + "xx"}
	}
	nextScrape := 0
	for i := range tc.lines {
		var v [nHists]float64
		var ok [nHists]bool
		for j := range v {
			// A family may be absent from a series for a while (no
			// upstream): it appears at its first observation.
			ok[j] = r.IntN(8) != 0
			v[j] = tc.value(r, i)
		}
		id := ""
		if r.Float64() < tc.exemplar {
			id = fmt.Sprintf("%032x", r.Uint64())
		}
		p.observe(labels[r.IntN(len(labels))], v, ok, id)
		fire := r.IntN(4) != 0
		if tc.lateTimers {
			fire = r.IntN(500) == 0
		}
		p.clock.advance(tc.step(r, i), fire)
		if i == nextScrape {
			// Scrapes swap client_golang's hot and cold counts: compare
			// at irregular points; the encodings follow from the protos,
			// and are compared at the end.
			if !p.compare(t, fmt.Sprintf("after line %d", i), false) {
				return
			}
			nextScrape += 1 + r.IntN(tc.lines/20)
		}
	}
	p.compare(t, "at the end", true)
}

// TestGoldenExpositionCoversLimits checks that the golden cases reach what
// they are meant to: schema reductions down to -4, resets (created
// timestamps after the first observation), zero-bucket and negative
// buckets, +Inf exemplars.
func TestGoldenExpositionCoversLimits(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range goldenCases() {
		p := newGoldenPair(t, goldenHists(tc.factor, tc.maxBuckets, tc.minReset))
		r := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
		labels := []string{"a", "GET", "200", "2xx"}
		start := p.clock.now()
		for i := range tc.lines {
			v := [nHists]float64{tc.value(r, i), tc.value(r, i), tc.value(r, i)}
			p.observe(labels, v, [nHists]bool{true, true, true}, fmt.Sprint(i))
			p.clock.advance(tc.step(r, i), true)
		}
		for _, h := range gatherHistograms(t, p.got) {
			initial := schemaOf(tc.factor)
			if h.GetSchema() < initial {
				seen["schema reduced"] = true
			}
			if h.GetSchema() == minSchema {
				seen["schema -4"] = true
			}
			if h.GetCreatedTimestamp().AsTime().After(start) {
				seen["reset"] = true
			}
			if h.GetZeroCount() > 0 {
				seen["zero bucket"] = true
			}
			if len(h.GetNegativeSpan()) > 0 {
				seen["negative buckets"] = true
			}
			if b := h.GetBucket(); len(b) > 0 && math.IsInf(b[len(b)-1].GetUpperBound(), 1) {
				seen["+Inf exemplar"] = true
			}
			if len(h.GetExemplars()) == defaultNativeExemplars {
				seen["native exemplars full"] = true
			}
		}
	}
	for _, want := range []string{"schema reduced", "schema -4", "reset", "zero bucket", "negative buckets", "+Inf exemplar", "native exemplars full"} {
		if !seen[want] {
			t.Errorf("no golden case reaches %q", want)
		}
	}
}

// TestNativeBucketBoundaries observes every native bucket boundary of every
// schema, and the floats either side of it, in both implementations, from
// subnormals to the largest exponent.
func TestNativeBucketBoundaries(t *testing.T) {
	for schema := int32(minSchema); schema <= maxSchema; schema++ {
		t.Run(fmt.Sprintf("schema %d", schema), func(t *testing.T) {
			// Just above the growth factor of schema, so that the
			// schema picked is this one and not the next finer.
			factor := math.Exp2(math.Exp2(-float64(schema))) * (1 + 1e-9)
			if got := schemaOf(factor); got != schema {
				t.Fatalf("factor %v picks schema %d", factor, got)
			}
			// A zero bucket of width 0, so that subnormals have buckets.
			hists := goldenHists(factor, 0, 0)
			for i := range hists {
				hists[i].NativeHistogramZeroThreshold = prometheus.NativeHistogramZeroThresholdZero
			}
			p := newGoldenPair(t, hists)
			var vals []float64
			for _, exp := range []int{-1070, -1040, -1022, -1021, -1020, -200, -3, 0, 1, 7, 30, 1000, 1024} {
				fracs := []float64{0.5}
				if schema > 0 {
					fracs = nativeBounds[schema]
				}
				for _, f := range fracs {
					b := math.Ldexp(f, exp)
					vals = append(vals, b, math.Nextafter(b, 0), math.Nextafter(b, math.Inf(1)), -b)
				}
			}
			labels := []string{"a", "GET", "200", "2xx"}
			for _, v := range vals {
				p.observe(labels, [nHists]float64{v, v, v}, [nHists]bool{true, true, true}, "")
			}
			p.compare(t, "boundaries", true)
		})
	}
}

// TestCollectConsistent scrapes while several goroutines observe: a scrape
// must never show a count other than the sum of the buckets, classic or
// native.
func TestCollectConsistent(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newRequestFamilies(prometheus.CounterOpts{Name: RequestsTotal, Help: "h"},
		goldenHists(defaultBucketFactor, nativeMaxBuckets, nativeMinResetDuration), []string{"a"}, realClock)
	reg.MustRegister(f)
	d := f.series([]string{"x"})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				l := line{ok: [nHists]bool{true, true, true}}
				for i := range l.v {
					l.v[i] = realisticValue(r, i)
				}
				f.observe(d, &l)
			}
		})
	}
	// Scrape only once the observers run.
	for deadline := time.Now().Add(10 * time.Second); ; {
		d.mu.Lock()
		n := d.requests
		d.mu.Unlock()
		if n > 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("observers made %d observations in 10 s", n)
		}
		time.Sleep(time.Millisecond)
	}
	var problems []string
	for scrape := 0; scrape < 200 && len(problems) == 0; scrape++ {
		for name, h := range gatherHistograms(t, reg) {
			n := h.GetZeroCount()
			for _, deltas := range [][]int64{h.GetPositiveDelta(), h.GetNegativeDelta()} {
				var c int64
				for _, x := range deltas {
					c += x
					n += uint64(c)
				}
			}
			classic := h.GetBucket()[len(h.GetBucket())-1].GetCumulativeCount()
			if n != h.GetSampleCount() || classic > h.GetSampleCount() {
				problems = append(problems, fmt.Sprintf("scrape %d: %s count %d, native buckets %d, classic up to the last bound %d",
					scrape, name, h.GetSampleCount(), n, classic))
			}
		}
	}
	close(stop)
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
}

// TestNativeBucketsModel checks the window and its far keys against a map,
// with keys arriving in orders that grow the window both ways and past its
// bound, and halving.
func TestNativeBucketsModel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 60 {
		var b nativeBuckets
		model := map[int]uint64{}
		centre := r.IntN(10000) - 5000
		for op := range 300 {
			var key int
			switch r.IntN(4) {
			case 0:
				key = centre + r.IntN(64) - 32
			case 1:
				key = centre + r.IntN(2*maxWindow) - maxWindow
			case 2:
				key = centre + r.IntN(8*maxWindow) - 4*maxWindow
			default:
				key = r.IntN(40000) - 20000
			}
			inc := uint64(1 + r.IntN(3))
			b.add(key, inc)
			model[key] += inc
			if r.IntN(100) == 0 {
				b.halve()
				next := map[int]uint64{}
				for k, c := range model {
					if k > 0 {
						k++
					}
					next[k/2] += c
				}
				model = next
			}
			var got, want [][2]int
			b.each(func(k int, c uint64) { got = append(got, [2]int{k, int(c)}) })
			for k, c := range model {
				want = append(want, [2]int{k, int(c)})
			}
			slices.SortFunc(want, func(x, y [2]int) int { return x[0] - y[0] })
			if !slices.Equal(got, want) || b.n != len(model) {
				t.Fatalf("round %d op %d (key %d): %d populated, buckets\n%v\nwant %d\n%v", round, op, key, b.n, got, len(model), want)
			}
			if len(b.counts) > maxWindow {
				t.Fatalf("window of %d keys, bound %d", len(b.counts), maxWindow)
			}
		}
	}
}

// gatherHistograms gathers g and yields its histograms with their family
// names.
func gatherHistograms(t *testing.T, g prometheus.Gatherer) iter.Seq2[string, *dto.Histogram] {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return func(yield func(string, *dto.Histogram) bool) {
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if h := m.GetHistogram(); h != nil && !yield(mf.GetName(), h) {
					return
				}
			}
		}
	}
}

// TestRequestsGolden: what Observe exposes through our collector is what
// the same lines gave through client_golang's vectors, as Observe used
// them before: label sets, folded series past max_series, values not
// logged, exemplars (one per line here: the lines are more than a second
// apart).
func TestRequestsGolden(t *testing.T) {
	clk := newFakeClock()
	cfg := with(func(c *config.Metrics) {
		c.Exemplars = true
		c.MaxSeries = 25
	})
	m, got := newRequests(t, cfg)
	m.fams.clock = clk.clock()

	counterOpts, histOpts := requestOpts(cfg, defaultBucketFactor)
	setHook(t, &counterOpts, "now", clk.now)
	want := prometheus.NewPedanticRegistry()
	counter := prometheus.NewCounterVec(counterOpts, cfg.Labels)
	want.MustRegister(counter)
	var hists [nHists]*prometheus.HistogramVec
	for i, o := range histOpts {
		setHook(t, &o, "now", clk.now)
		setHook(t, &o, "afterFunc", clk.afterFunc)
		hists[i] = prometheus.NewHistogramVec(o, cfg.Labels)
		want.MustRegister(hists[i])
	}

	records := mix(3000)
	start := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i, r := range records {
		r.Time = start.Add(time.Duration(i) * 1500 * time.Millisecond)
		switch i % 3 {
		case 0:
			r.TraceID = []byte(fmt.Sprintf("%032x", i))
		case 1:
			r.RequestID = []byte(fmt.Sprintf("req-%d", i))
		}
		if i%7 == 0 {
			r.BodyBytes = -1
		}
		if i%11 == 0 {
			r.UpstreamResponseTime = -1
		}
		if i%13 == 0 {
			r.RequestTime, r.BodyBytes = 0, 0
		}
	}
	for i, r := range records {
		m.Observe(r)
		s := m.seriesOf(r)
		counter.WithLabelValues(s.labels...).Inc()
		name, id := exemplarID(r)
		for j, v := range [nHists]float64{r.RequestTime, r.UpstreamResponseTime, float64(r.BodyBytes)} {
			if v < 0 {
				continue
			}
			o := hists[j].WithLabelValues(s.labels...)
			if id != nil && j != histSize {
				o.(prometheus.ExemplarObserver).ObserveWithExemplar(v, prometheus.Labels{name: string(id)})
			} else {
				o.Observe(v)
			}
		}
		clk.advance(1500*time.Millisecond, true)
		if i%500 == 0 && !compareGathered(t, fmt.Sprintf("after line %d", i), want, onlyRequestFamilies(got), false) {
			return
		}
	}
	compareGathered(t, "at the end", want, onlyRequestFamilies(got), true)
}

// onlyRequestFamilies is g without the overflow and exemplar counters,
// which the client_golang side of TestRequestsGolden does not build.
func onlyRequestFamilies(g prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		return slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool {
			switch mf.GetName() {
			case RequestsTotal, RequestDuration, UpstreamDuration, ResponseSize:
				return false
			}
			return true
		}), err
	})
}

// TestClassicBucketOf: the classic bucket found from the native key is the
// one the scan of the bounds finds, for every schema and bucket lists with
// bounds not positive, subnormal, on native boundaries and far apart, at
// each bound, just around it, and at random values.
func TestClassicBucketOf(t *testing.T) {
	lists := map[string][]float64{
		"duration":  defaultDurationBuckets,
		"size":      defaultSizeBuckets,
		"nginx":     nginxBuckets,
		"odd":       {-5, -0.5, 0, 0.125, 0.5, 0.7071067811865475, 1, 1, 3, 1e3},
		"subnormal": {5e-324, 1e-320, 1e-310, 2.2250738585072014e-308},
		"none":      {-1, 0},
		"one":       {0.3},
		"wide":      {1e-300, 1e300}, // too many keys past schema 1: no table
	}
	r := rand.New(rand.NewPCG(1, 2))
	var bad []string
	for name, bounds := range lists {
		for schema := int32(minSchema); schema <= maxSchema; schema++ {
			s := histShape{bounds: bounds, schema: schema}
			s.keyStart, s.keyLo, s.below = keyStarts(bounds, schema)
			if s.keyStart == nil {
				if name != "wide" && schema <= 3 || name == "wide" && schema < 2 {
					bad = append(bad, fmt.Sprintf("%s schema %d: no table", name, schema))
				}
				continue
			}
			if name == "wide" && schema >= 2 {
				bad = append(bad, fmt.Sprintf("%s schema %d: a table of %d keys", name, schema, len(s.keyStart)))
			}
			var vals []float64
			for _, b := range bounds {
				vals = append(vals, b, math.Nextafter(b, math.Inf(1)), math.Nextafter(b, math.Inf(-1)), b*1.01, b*0.99)
			}
			for range 2000 {
				vals = append(vals, math.Ldexp(r.Float64(), r.IntN(2100)-1074))
			}
			vals = append(vals, math.SmallestNonzeroFloat64, math.MaxFloat64, math.Inf(1))
			for _, v := range vals {
				if !(v > 0) {
					continue
				}
				if got, want := s.classicBucketOf(v, nativeKey(v, schema)), s.classicBucket(v); got != want {
					bad = append(bad, fmt.Sprintf("%s schema %d value %g: bucket %d, want %d", name, schema, v, got, want))
				}
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d mismatches, the first ones:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
}
