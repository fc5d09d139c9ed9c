package metrics

import (
	"fmt"
	"math/rand/v2"
	"testing"

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
