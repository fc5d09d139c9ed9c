package pipeline

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/metrics"
)

// selfMetrics are the pipeline's reports on itself. Label values are
// resolved once here so the per-line path only touches atomics.
type selfMetrics struct {
	parsed, failed prometheus.Counter
	reasons        []prometheus.Counter // by accesslog.Reason
	// internal counts records whose handling panicked (a defect, contained).
	internal prometheus.Counter
	delay    *metrics.Histogram
	panics   rateLimit
}

// rateLimit lets one event through per minute and counts the rest.
type rateLimit struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow says whether to report now, and how many were suppressed since the
// last report.
func (r *rateLimit) allow(now time.Time) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < time.Minute {
		r.suppressed++
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return n, true
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	records := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_records_total",
		Help: "Records consumed, by result: parsed, or failed (counted by reason in accesslog_exporter_parse_errors_total, and still forwarded).",
	}, []string{"result"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_parse_errors_total",
		Help: "Lines that did not match their log_format, by reason.",
	}, []string{"reason"})
	delay := metrics.NewHistogram(prometheus.HistogramOpts{
		Name:                            "accesslog_exporter_event_delay_seconds",
		Help:                            "Time from a line's own timestamp (or its Filebeat @timestamp) to its processing here.",
		Buckets:                         []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: 3600e9,
	})
	for _, c := range []prometheus.Collector{records, errs, delay} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m := &selfMetrics{
		parsed:   records.WithLabelValues("parsed"),
		failed:   records.WithLabelValues("failed"),
		delay:    delay,
		internal: errs.WithLabelValues("internal_error"),
	}
	reasons := accesslog.Reasons()
	m.reasons = make([]prometheus.Counter, int(reasons[len(reasons)-1])+1)
	// Reason 0 is a failure the parser could not classify; it should never
	// be seen, and a series that says so is better than a silent drop.
	m.reasons[0] = errs.WithLabelValues(accesslog.Reason(0).String())
	for _, r := range reasons {
		m.reasons[r] = errs.WithLabelValues(r.String())
	}
	return m, nil
}

func (m *selfMetrics) reason(r accesslog.Reason) prometheus.Counter {
	if int(r) < len(m.reasons) {
		return m.reasons[r]
	}
	return m.reasons[0]
}
