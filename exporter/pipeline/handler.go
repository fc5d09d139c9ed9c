package pipeline

import (
	"errors"
	"time"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/metrics"
)

// handler is one worker's path for a line: decode, parse, count. It owns a
// Decoder and a Record, so it is used by one goroutine only; the Kafka path
// and replay both go through it, so replay shows what Kafka would.
type handler struct {
	rules *rules
	dec   *accesslog.Decoder
	rec   accesslog.Record
	reqs  *metrics.Requests
	self  *selfMetrics

	// What handle counted and flush has not published yet: a lock for the
	// delay histogram and an atomic add for the parsed lines once a batch
	// rather than once a line (both workers share them).
	delays []float64
	parsed int
}

// handlerPending is the most delays a handler keeps before it flushes.
const handlerPending = 1024

func newHandler(r *rules, self *selfMetrics) *handler {
	h := &handler{self: self, delays: make([]float64, 0, handlerPending)}
	h.use(r)
	return h
}

// use switches to the rules of a reload.
func (h *handler) use(r *rules) {
	dec, err := accesslog.NewDecoder(r.dec.dc)
	if err != nil {
		// compileInput built the same Decoder already.
		panic(err)
	}
	h.rules, h.dec, h.reqs = r, dec, r.reqs
}

// decode reads one record value into h.rec without counting it: the log
// member's path.
func (h *handler) decode(value []byte) error { return h.dec.Decode(value, &h.rec) }

// handle processes one record value. now is taken once per batch by the
// caller: the delay histogram does not need nanoseconds per line. The
// caller flushes at the end of the batch, before the batch counts as
// counted (a commit waits for a scrape that shows it).
func (h *handler) handle(value []byte, now time.Time) *accesslog.ParseError {
	err := h.dec.Decode(value, &h.rec)
	ts := h.rec.Time
	if ts.IsZero() {
		ts = h.rec.Timestamp
	}
	if !ts.IsZero() {
		if len(h.delays) == cap(h.delays) {
			h.flush()
		}
		h.delays = append(h.delays, delaySeconds(now, ts))
	}
	if err != nil {
		h.self.failed.Inc()
		var pe *accesslog.ParseError
		if errors.As(err, &pe) {
			h.self.reason(pe.Reason).Inc()
			return pe
		}
		h.self.reason(0).Inc()
		return &accesslog.ParseError{}
	}
	h.parsed++
	h.reqs.Observe(&h.rec)
	return nil
}

// flush publishes what handle counted since the last flush.
func (h *handler) flush() {
	if len(h.delays) > 0 {
		h.self.delay.ObserveMany(h.delays)
		h.delays = h.delays[:0]
	}
	if h.parsed > 0 {
		h.self.parsed.Add(float64(h.parsed))
		h.parsed = 0
	}
}

// maxDelaySeconds bounds the seconds between two times whose difference in
// nanoseconds fits a time.Duration (about 292 years) with room for the
// nanoseconds.
const maxDelaySeconds = 9e9

// delaySeconds is now.Sub(ts).Seconds() for a ts parsed from a line, which
// carries no monotonic reading: Sub checks its result for overflow by
// adding it back and comparing (Add and Equal, about 110 instructions a
// line), which a difference of under 292 years cannot need.
func delaySeconds(now, ts time.Time) float64 {
	if s := now.Unix() - ts.Unix(); s > -maxDelaySeconds && s < maxDelaySeconds {
		d := time.Duration(s)*time.Second + time.Duration(now.Nanosecond()-ts.Nanosecond())
		return d.Seconds()
	}
	return now.Sub(ts).Seconds()
}
