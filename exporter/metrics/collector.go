package metrics

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The histograms of a series, in this order.
const (
	histDuration = iota
	histUpstream
	histSize
	nHists
)

// clock is the time the request families read: client_golang's histograms
// have the same two hooks (unexported), which is how the golden test runs
// both on one fake clock.
type clock struct {
	now       func() time.Time
	afterFunc func(time.Duration, func()) *time.Timer
}

var realClock = clock{now: time.Now, afterFunc: time.AfterFunc}

// requestFamilies is the Collector of the request counter and the three
// request histograms, exposed as client_golang's CounterVec and
// HistogramVecs built from the same options would expose them.
type requestFamilies struct {
	descs  [1 + nHists]*prometheus.Desc // the counter, then the histograms
	shapes [nHists]histShape
	clock  clock

	mu       sync.Mutex
	byLabels map[string]*seriesData
	all      []*seriesData // append only; Collect reads a prefix
}

func newRequestFamilies(counter prometheus.CounterOpts, hists [nHists]prometheus.HistogramOpts, labelNames []string, c clock) *requestFamilies {
	f := &requestFamilies{clock: c, byLabels: map[string]*seriesData{}}
	f.descs[0] = prometheus.NewDesc(prometheus.BuildFQName(counter.Namespace, counter.Subsystem, counter.Name),
		counter.Help, labelNames, counter.ConstLabels)
	for i, o := range hists {
		f.descs[1+i] = prometheus.NewDesc(prometheus.BuildFQName(o.Namespace, o.Subsystem, o.Name),
			o.Help, labelNames, o.ConstLabels)
		f.shapes[i] = newHistShape(o)
	}
	return f
}

// seriesData is the counter and histograms of one label set. Its mutex
// covers all four: a line takes it once.
type seriesData struct {
	mu       sync.Mutex
	requests uint64
	hist     [nHists]histogram

	created *timestamppb.Timestamp // the counter's
	labels  []*dto.LabelPair
	metrics [1 + nHists]familyMetric
}

// series returns the data of a label set, the same for equal label values
// (a series past max_series can fold to the label values of one that is
// not, as the vectors' WithLabelValues would return the same child).
func (f *requestFamilies) series(labelValues []string) *seriesData {
	key := strings.Join(labelValues, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.byLabels[key]; d != nil {
		return d
	}
	d := &seriesData{
		created: timestamppb.New(f.clock.now()),
		labels:  prometheus.MakeLabelPairs(f.descs[0], labelValues),
	}
	for i := range d.metrics {
		d.metrics[i] = familyMetric{f: f, d: d, fam: i}
	}
	f.byLabels[key] = d
	f.all = append(f.all, d)
	return d
}

// line is what one access-log line adds to a series: the request, and the
// histogram values that are set, with their exemplars.
type line struct {
	v  [nHists]float64
	ok [nHists]bool
	ex [nHists]*dto.Exemplar // nil: none
}

// observe counts l in d.
func (f *requestFamilies) observe(d *seriesData, l *line) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests++
	// Written out per histogram, so that each histogram and shape is at a
	// constant offset: the loop indexed structs of about 200 bytes.
	if h, s := &d.hist[histDuration], &f.shapes[histDuration]; l.ok[histDuration] {
		if !h.live {
			f.start(h, s)
		}
		if b := h.observe(l.v[histDuration], s, &f.clock, &d.mu); l.ex[histDuration] != nil {
			h.exemplar(l.ex[histDuration], b, s)
		}
	}
	if h, s := &d.hist[histUpstream], &f.shapes[histUpstream]; l.ok[histUpstream] {
		if !h.live {
			f.start(h, s)
		}
		if b := h.observe(l.v[histUpstream], s, &f.clock, &d.mu); l.ex[histUpstream] != nil {
			h.exemplar(l.ex[histUpstream], b, s)
		}
	}
	if h, s := &d.hist[histSize], &f.shapes[histSize]; l.ok[histSize] {
		if !h.live {
			f.start(h, s)
		}
		if b := h.observe(l.v[histSize], s, &f.clock, &d.mu); l.ex[histSize] != nil {
			h.exemplar(l.ex[histSize], b, s)
		}
	}
}

// start makes h live, out of observe's code.
//
//go:noinline
func (f *requestFamilies) start(h *histogram, s *histShape) { h.start(s, f.clock.now()) }

// newExemplar is an exemplar for v as client_golang makes it; labels must
// be valid (see Requests.exemplar).
func newExemplar(v float64, now time.Time, labels []*dto.LabelPair) *dto.Exemplar {
	return &dto.Exemplar{Label: labels, Value: proto.Float64(v), Timestamp: timestamppb.New(now)}
}

func (f *requestFamilies) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range f.descs {
		ch <- d
	}
}

func (f *requestFamilies) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	all := f.all
	f.mu.Unlock()
	for _, d := range all {
		ch <- &d.metrics[0]
		var live [nHists]bool
		d.mu.Lock()
		for i := range d.hist {
			live[i] = d.hist[i].live
		}
		d.mu.Unlock()
		for i, ok := range live {
			if ok {
				ch <- &d.metrics[1+i]
			}
		}
	}
}

// familyMetric is one family's metric of a series.
type familyMetric struct {
	f   *requestFamilies
	d   *seriesData
	fam int // index into descs
}

func (m *familyMetric) Desc() *prometheus.Desc { return m.f.descs[m.fam] }

func (m *familyMetric) Write(out *dto.Metric) error {
	d := m.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if m.fam == 0 {
		out.Label = d.labels
		out.Counter = &dto.Counter{Value: proto.Float64(float64(d.requests)), CreatedTimestamp: d.created}
		return nil
	}
	d.hist[m.fam-1].write(out, &m.f.shapes[m.fam-1], d.labels)
	return nil
}
