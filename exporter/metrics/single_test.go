package metrics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestGoldenSingleHistogram: a Histogram exposes what client_golang's
// NewHistogram does for the same options and observations on one clock,
// before the first observation too, in every format.
func TestGoldenSingleHistogram(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			opts := prometheus.HistogramOpts{
				Name:                            "accesslog_exporter_event_delay_seconds",
				Help:                            "Time from a line's own timestamp to its processing here.",
				ConstLabels:                     prometheus.Labels{"sink": "metrics"},
				Buckets:                         []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
				NativeHistogramBucketFactor:     tc.factor,
				NativeHistogramMaxBucketNumber:  tc.maxBuckets,
				NativeHistogramMinResetDuration: tc.minReset,
			}
			ours := newHistogram(opts, clock.clock())
			setHook(t, &opts, "now", clock.now)
			setHook(t, &opts, "afterFunc", clock.afterFunc)
			theirs := prometheus.NewHistogram(opts)
			want, got := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
			want.MustRegister(theirs)
			got.MustRegister(ours)
			if !compareGathered(t, "before any observation", want, got, true) {
				return
			}
			r := rand.New(rand.NewPCG(2, uint64(len(tc.name))))
			nextScrape := 0
			for i := range tc.lines {
				v := tc.value(r, i)
				theirs.Observe(v)
				ours.Observe(v)
				fire := r.IntN(4) != 0
				if tc.lateTimers {
					fire = r.IntN(500) == 0
				}
				clock.advance(tc.step(r, i), fire)
				if i == nextScrape {
					if !compareGathered(t, fmt.Sprintf("after line %d", i), want, got, false) {
						return
					}
					nextScrape += 1 + r.IntN(tc.lines/20)
				}
			}
			compareGathered(t, "at the end", want, got, true)
		})
	}
}

// ObserveMany is Observe of each value: the same exposition in every
// format, with values past the bucket limit (a schema reduction) and a
// reset on the way.
func TestObserveManyIsObserveEach(t *testing.T) {
	clock := newFakeClock()
	opts := prometheus.HistogramOpts{
		Name:                            "accesslog_exporter_event_delay_seconds",
		Help:                            "Time from a line's own timestamp to its processing here.",
		Buckets:                         []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  20,
		NativeHistogramMinResetDuration: time.Hour,
	}
	each, many := newHistogram(opts, clock.clock()), newHistogram(opts, clock.clock())
	want, got := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
	want.MustRegister(each)
	got.MustRegister(many)
	r := rand.New(rand.NewPCG(3, 4))
	for batch := range 50 {
		vs := make([]float64, r.IntN(300))
		for i := range vs {
			vs[i] = math.Exp(r.NormFloat64()*3) - 0.01
		}
		for _, v := range vs {
			each.Observe(v)
		}
		many.ObserveMany(vs)
		clock.advance(time.Duration(r.IntN(600))*time.Second, true)
		if !compareGathered(t, fmt.Sprintf("after batch %d", batch), want, got, batch%10 == 0) {
			return
		}
	}
}
