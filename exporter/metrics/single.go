package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Histogram is one histogram without labels, exposed as
// prometheus.NewHistogram with the same options would expose it. It is
// ours for the reason the request histograms are (see histogram.go): it is
// observed on every line (the event delay), and client_golang's native
// buckets cost a sync.Map lookup an observation.
type Histogram struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair // the constant ones
	shape  histShape
	clock  clock

	mu sync.Mutex
	h  histogram
}

// NewHistogram panics on the options newHistShape does not reproduce.
func NewHistogram(opts prometheus.HistogramOpts) *Histogram {
	return newHistogram(opts, realClock)
}

func newHistogram(opts prometheus.HistogramOpts, c clock) *Histogram {
	h := &Histogram{
		desc:  prometheus.NewDesc(prometheus.BuildFQName(opts.Namespace, opts.Subsystem, opts.Name), opts.Help, nil, opts.ConstLabels),
		shape: newHistShape(opts),
		clock: c,
	}
	h.labels = prometheus.MakeLabelPairs(h.desc, nil)
	// Unlike a vector's child, it exists, and is exposed, from the start.
	h.h.start(&h.shape, c.now())
	return h
}

func (h *Histogram) Observe(v float64) {
	h.mu.Lock()
	h.h.observe(v, &h.shape, &h.clock, &h.mu)
	h.mu.Unlock()
}

func (h *Histogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h *Histogram) Collect(ch chan<- prometheus.Metric) { ch <- h }

func (h *Histogram) Desc() *prometheus.Desc { return h.desc }

func (h *Histogram) Write(out *dto.Metric) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.h.write(out, &h.shape, h.labels)
	return nil
}
