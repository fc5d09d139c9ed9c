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
}

func newHandler(r *rules, self *selfMetrics) *handler {
	h := &handler{self: self}
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
// caller: the delay histogram does not need nanoseconds per line.
func (h *handler) handle(value []byte, now time.Time) *accesslog.ParseError {
	err := h.dec.Decode(value, &h.rec)
	if ts := h.rec.Time; !ts.IsZero() {
		h.self.delay.Observe(delaySeconds(now, ts))
	} else if ts := h.rec.Timestamp; !ts.IsZero() {
		h.self.delay.Observe(delaySeconds(now, ts))
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
	h.self.parsed.Inc()
	h.reqs.Observe(&h.rec)
	return nil
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
