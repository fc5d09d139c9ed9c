package loki

import (
	"github.com/prometheus/client_golang/prometheus"
)

type clientMetrics struct {
	sentEntries, sentBytes                                         prometheus.Counter
	batchOK, batchRetried, batchSplit, batchRejected, batchDropped prometheus.Counter
	truncated                                                      prometheus.Counter
	retriesVec, rejectedVec, droppedVec                            *prometheus.CounterVec
	duration                                                       prometheus.Histogram
}

func (m *clientMetrics) retries(reason string) prometheus.Counter {
	return m.retriesVec.WithLabelValues(reason)
}
func (m *clientMetrics) rejected(reason string) prometheus.Counter {
	return m.rejectedVec.WithLabelValues(reason)
}
func (m *clientMetrics) dropped(reason string) prometheus.Counter {
	return m.droppedVec.WithLabelValues(reason)
}

// newClientMetrics builds the client's metrics; the per-line path touches
// none of them (they count per push), so label lookups here are fine.
func newClientMetrics(reg prometheus.Registerer, c *Client) (*clientMetrics, error) {
	sent := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "accesslog_exporter_loki_entries_sent_total",
		Help: "Lines Loki acknowledged (2xx).",
	})
	bytes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "accesslog_exporter_loki_bytes_sent_total",
		Help: "Line bytes Loki acknowledged (2xx), before compression.",
	})
	batches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_loki_batches_total",
		Help: "Push requests by result: ok, retried (network error, 429 or 5xx), split (a 4xx for several entries), rejected (a 4xx for one entry), dropped (loki.drop or loki.retry.max_retries).",
	}, []string{"result"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_loki_retries_total",
		Help: "Push requests that will be retried, by reason: network, timeout, 429, 5xx, 4xx (401, 403, 404 and the like: a setup problem).",
	}, []string{"reason"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_loki_rejected_total",
		Help: "Lines Loki refused with a 4xx on their own, by reason; they are skipped and their offsets committed.",
	}, []string{"reason"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_loki_dropped_total",
		Help: "Lines given up on without an acknowledgement (opt-in: loki.drop, loki.retry.max_retries), by reason.",
	}, []string{"reason"})
	truncated := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_loki_truncated_total",
		Help: "Lines cut before pushing, by reason: max_line_bytes (longer than loki.max_line_bytes; the rest of the line is not sent).",
	}, []string{"reason"})
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "accesslog_exporter_loki_inflight_bytes",
		Help: "Line bytes handed to the Loki client and not yet acknowledged, rejected or dropped.",
	}, func() float64 { return float64(c.inflight.Load()) })
	streams := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "accesslog_exporter_loki_streams",
		Help: "Distinct label sets pushed (bounded by loki.labels.max_streams).",
	}, func() float64 { return float64(c.streams.count()) })
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                            "accesslog_exporter_loki_push_duration_seconds",
		Help:                            "Duration of push requests, whatever their result.",
		Buckets:                         []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  100,
		NativeHistogramMinResetDuration: 3600e9,
	})
	if reg != nil {
		for _, m := range []prometheus.Collector{sent, bytes, batches, retries, rejected, dropped, truncated, inflight, streams, duration} {
			if err := reg.Register(m); err != nil {
				return nil, err
			}
		}
	}
	// Series that exist from the start, so that rate() and alerts see a 0.
	for _, r := range []string{"network", "timeout", "429", "5xx", "4xx"} {
		retries.WithLabelValues(r)
	}
	return &clientMetrics{
		sentEntries: sent, sentBytes: bytes,
		batchOK: batches.WithLabelValues("ok"), batchRetried: batches.WithLabelValues("retried"),
		batchSplit: batches.WithLabelValues("split"), batchRejected: batches.WithLabelValues("rejected"),
		batchDropped: batches.WithLabelValues("dropped"), truncated: truncated.WithLabelValues("max_line_bytes"),
		retriesVec: retries, rejectedVec: rejected, droppedVec: dropped, duration: duration,
	}, nil
}
