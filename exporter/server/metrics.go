package server

import (
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Exposition is metric families that their owner encodes ahead of the
// scrape, because encoding them at every scrape would be too slow (the Kafka
// health poller's hundreds of thousands of series change once per poll).
// The metrics endpoint writes them among the registry's families.
type Exposition interface {
	// Exposition returns the families encoded in format f (as negotiated
	// with the scraper), one chunk per family, in name order: for
	// OpenMetrics without the closing "# EOF", which the endpoint writes
	// last. With gzipped each chunk must be one or more whole gzip members
	// (RFC 1952 allows a stream of members; Go's reader, hence
	// Prometheus's, reads them as one). It must not block on anything slow.
	Exposition(f expfmt.Format, gzipped bool) (iter.Seq2[string, []byte], error)
}

var gzipPool = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// metricsHandler is promhttp.HandlerFor(reg, ...) with ContinueOnError,
// OpenMetrics, gzip, name[] filtering, MaxRequestsInFlight and Timeout, the
// same headers, error counter and error texts, that also writes the
// expositions' pre-encoded families. Families are written in name order
// across the registry and the expositions, so the body is byte for byte
// what promhttp writes when the same families are gathered from a registry.
//
// Unlike promhttp it never buffers a response per request: with the series
// budget full the body is ~100 MB, and http.TimeoutHandler's buffer per
// concurrent or slow scraper took the process to gigabytes. Scrapes of one
// format share one encoding (see encodings), held only while someone reads
// it; a scrape holds its in-flight slot until its last byte is written, so
// slow readers count against the limit; the server's write timeout cuts a
// reader that stalls.
func (s *Server) metricsHandler(reg *prometheus.Registry, expositions []Exposition) http.Handler {
	logError := func(msg string, err error) {
		s.logger.Error(msg, "component", "promhttp", "err", err)
	}
	errCnt := registerOnce(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promhttp_metric_handler_errors_total",
		Help: "Total number of internal errors encountered by the promhttp metric handler.",
	}, []string{"cause"}))
	gatherErrs, encodeErrs := errCnt.WithLabelValues("gathering"), errCnt.WithLabelValues("encoding")
	rejected := registerOnce(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accesslog_exporter_http_rejected_total",
		Help: "Requests and connections the HTTP server turned away to bound its memory and file descriptors, by reason: in_flight (503, --web.max-requests scrapes already running), timeout (503, gathering took longer than --web.scrape-timeout), connection_limit (a new connection closed, --web.max-connections open and none idle), idle_closed (an idle keep-alive connection closed to make room).",
	}, []string{"reason"}))
	for _, r := range []string{"in_flight", "timeout", "connection_limit", "idle_closed"} {
		rejected.WithLabelValues(r)
	}
	s.rejected = rejected

	var inFlight chan struct{}
	if s.cfg.MaxRequestsInFlight > 0 {
		inFlight = make(chan struct{}, s.cfg.MaxRequestsInFlight)
	}
	formats := expfmt.DefaultOpenMetricsAcceptedFormats()
	enc := &encodings{
		perKey: s.cfg.MaxEncodings,
		live:   map[renderKey][]*encoding{},
		encode: func(key renderKey, only map[string]bool, w io.Writer) (int, error) {
			return encodeFamilies(reg, expositions, key, only, w, logError, gatherErrs, encodeErrs)
		},
	}
	timeoutMsg := fmt.Sprintf("Exceeded configured timeout of %v.\n", s.cfg.ScrapeTimeout)

	return http.HandlerFunc(func(rsp http.ResponseWriter, req *http.Request) {
		if inFlight != nil {
			select {
			case inFlight <- struct{}{}:
				// Held until the last byte is written: a slow reader is a
				// scrape in flight.
				defer func() { <-inFlight }()
			default:
				rejected.WithLabelValues("in_flight").Inc()
				http.Error(rsp, fmt.Sprintf(
					"Limit of concurrent requests reached (%d), try again later.", s.cfg.MaxRequestsInFlight,
				), http.StatusServiceUnavailable)
				return
			}
		}
		key, only := scrapeWanted(req, formats)
		var timeout <-chan time.Time
		if s.cfg.ScrapeTimeout > 0 {
			t := time.NewTimer(s.cfg.ScrapeTimeout)
			defer t.Stop()
			timeout = t.C
		}
		e := enc.acquire(key, only)
		defer enc.release(e)
		select {
		case <-e.done:
		case <-timeout:
			rejected.WithLabelValues("timeout").Inc()
			http.Error(rsp, timeoutMsg, http.StatusServiceUnavailable)
			return
		case <-req.Context().Done():
			return
		}
		if e.err != nil {
			httpError(rsp, e.err)
			return
		}
		if s.writeEncoding(rsp, key, e) && only == nil {
			s.scrapes.served(e.gathered)
		}
	})
}

// scrapeWanted reads what a scrape asks for: the format and compression
// negotiated from its headers, and the families named by name[] (nil: all).
func scrapeWanted(req *http.Request, formats []expfmt.Format) (renderKey, map[string]bool) {
	key := renderKey{
		format:  expfmt.NegotiateAccept(req.Header, formats...),
		gzipped: acceptsGzip(req.Header.Get("Accept-Encoding")),
	}
	var only map[string]bool
	if req.URL != nil {
		if names := req.URL.Query()["name[]"]; len(names) > 0 {
			only = make(map[string]bool, len(names))
			for _, n := range names {
				only[n] = true
			}
		}
	}
	return key, only
}

// writeEncoding sends a finished encoding, bounded by the write timeout,
// and says whether all of it was written.
func (s *Server) writeEncoding(rsp http.ResponseWriter, key renderKey, e *encoding) bool {
	h := rsp.Header()
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Type", string(key.format))
	if key.gzipped {
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(e.size))
	if s.cfg.WriteTimeout > 0 {
		// The write timeout bounds the sending, not the wait for the
		// encoding (--web.scrape-timeout bounds that).
		_ = http.NewResponseController(rsp).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	}
	for _, c := range e.chunks {
		if _, err := rsp.Write(c); err != nil {
			// The scraper went away or stalled past the write timeout.
			return false
		}
	}
	return true
}

// registerOnce registers c on reg, or returns the collector of the same
// description registered before (New may be called twice on one registry).
func registerOnce[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		are := &prometheus.AlreadyRegisteredError{}
		if !errors.As(err, are) {
			panic(err)
		}
		return are.ExistingCollector.(C)
	}
	return c
}

// encodeFamilies gathers reg, merges the expositions' pre-encoded families
// in name order, and writes the body for key to w. It fails only when
// nothing at all could be gathered.
func encodeFamilies(reg prometheus.Gatherer, expositions []Exposition, key renderKey, only map[string]bool,
	out io.Writer, logError func(string, error), gatherErrs, encodeErrs prometheus.Counter,
) (int, error) {
	mfs, err := reg.Gather()
	if err != nil {
		// A failing collector must not hide the others: serve what
		// gathered, and count the error.
		logError("error gathering metrics", err)
		gatherErrs.Inc()
		if len(mfs) == 0 {
			return 0, err
		}
	}
	parts := make([]part, 0, len(mfs)+32)
	seen := make(map[string]bool, len(mfs))
	for _, mf := range mfs {
		seen[mf.GetName()] = true
		if only == nil || only[mf.GetName()] {
			parts = append(parts, part{name: mf.GetName(), mf: mf})
		}
	}
	mfs = nil // what name[] left out can go now
	for _, e := range expositions {
		fams, err := e.Exposition(key.format, key.gzipped)
		if err != nil {
			logError("error gathering metrics", err)
			gatherErrs.Inc()
			continue
		}
		for name, chunk := range fams {
			if seen[name] {
				// As a registry refuses a second collector of one
				// family: the body would not parse.
				logError("error gathering metrics", fmt.Errorf("metric family %q is both gathered and pre-encoded, or pre-encoded twice", name))
				gatherErrs.Inc()
				continue
			}
			seen[name] = true
			if only == nil || only[name] {
				parts = append(parts, part{name: name, chunk: chunk})
			}
		}
	}
	slices.SortStableFunc(parts, func(a, b part) int { return cmp.Compare(a.name, b.name) })

	cw := &countingWriter{w: out}
	w := &memberWriter{w: cw, gzipped: key.gzipped}
	enc := expfmt.NewEncoder(w, key.format)
	encodeErr := func(err error) {
		if err != nil {
			logError("error encoding and sending metric family", err)
			encodeErrs.Inc()
		}
	}
	for i, p := range parts {
		if p.mf != nil {
			encodeErr(enc.Encode(p.mf))
		} else {
			encodeErr(w.writeEncoded(p.chunk))
		}
		parts[i] = part{} // encoded: its families can go
	}
	if c, ok := enc.(expfmt.Closer); ok {
		// The final "# EOF" of OpenMetrics, after every part.
		encodeErr(c.Close())
	}
	encodeErr(w.endMember())
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// part is one family of the response: gathered, or pre-encoded.
type part struct {
	name  string
	mf    *dto.MetricFamily
	chunk []byte
}

// memberWriter writes the response body: what the encoder writes goes
// through gzip when gzipped, and pre-encoded chunks (whole gzip members
// then) are written as they are between the members it compresses.
type memberWriter struct {
	w       io.Writer
	gzipped bool
	gz      *gzip.Writer // open member, nil between members
}

func (m *memberWriter) Write(p []byte) (int, error) {
	if !m.gzipped {
		return m.w.Write(p)
	}
	if m.gz == nil {
		m.gz = gzipPool.Get().(*gzip.Writer)
		m.gz.Reset(m.w)
	}
	return m.gz.Write(p)
}

func (m *memberWriter) writeEncoded(chunk []byte) error {
	err := m.endMember()
	if _, werr := m.w.Write(chunk); err == nil {
		err = werr
	}
	return err
}

func (m *memberWriter) endMember() error {
	if m.gz == nil {
		return nil
	}
	err := m.gz.Close()
	gzipPool.Put(m.gz)
	m.gz = nil
	return err
}

// acceptsGzip reports whether an Accept-Encoding header prefers gzip to
// identity, as promhttp negotiates between the two.
func acceptsGzip(header string) bool {
	gzipQ, identityQ := -1.0, -1.0
	for spec := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(spec, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		q := 1.0
		for param := range strings.SplitSeq(params, ";") {
			if k, v, ok := strings.Cut(param, "="); ok && strings.TrimSpace(k) == "q" {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch coding {
		case "gzip", "*":
			gzipQ = max(gzipQ, q)
			if coding == "*" {
				identityQ = max(identityQ, q)
			}
		case "identity":
			identityQ = max(identityQ, q)
		}
	}
	return gzipQ > 0 && gzipQ > identityQ
}

func httpError(rsp http.ResponseWriter, err error) {
	rsp.Header().Del("Content-Encoding")
	http.Error(rsp, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
}
