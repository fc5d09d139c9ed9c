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
func (s *Server) metricsHandler(reg *prometheus.Registry, expositions []Exposition) http.Handler {
	logError := func(msg string, err error) {
		s.logger.Error(msg, "component", "promhttp", "err", err)
	}
	errCnt := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promhttp_metric_handler_errors_total",
		Help: "Total number of internal errors encountered by the promhttp metric handler.",
	}, []string{"cause"})
	errCnt.WithLabelValues("gathering")
	errCnt.WithLabelValues("encoding")
	if err := reg.Register(errCnt); err != nil {
		are := &prometheus.AlreadyRegisteredError{}
		if !errors.As(err, are) {
			panic(err)
		}
		errCnt = are.ExistingCollector.(*prometheus.CounterVec)
	}
	gatherErrs, encodeErrs := errCnt.WithLabelValues("gathering"), errCnt.WithLabelValues("encoding")

	var inFlight chan struct{}
	if s.cfg.MaxRequestsInFlight > 0 {
		inFlight = make(chan struct{}, s.cfg.MaxRequestsInFlight)
	}
	formats := expfmt.DefaultOpenMetricsAcceptedFormats()

	h := http.HandlerFunc(func(rsp http.ResponseWriter, req *http.Request) {
		if inFlight != nil {
			select {
			case inFlight <- struct{}{}:
				defer func() { <-inFlight }()
			default:
				http.Error(rsp, fmt.Sprintf(
					"Limit of concurrent requests reached (%d), try again later.", s.cfg.MaxRequestsInFlight,
				), http.StatusServiceUnavailable)
				return
			}
		}
		mfs, err := reg.Gather()
		if err != nil {
			// A failing collector must not hide the others: serve what
			// gathered, and count the error.
			logError("error gathering metrics", err)
			gatherErrs.Inc()
			if len(mfs) == 0 {
				httpError(rsp, err)
				return
			}
		}

		format := expfmt.NegotiateAccept(req.Header, formats...)
		rsp.Header().Add("Vary", "Accept")
		rsp.Header().Add("Vary", "Accept-Encoding")
		rsp.Header().Set("Content-Type", string(format))
		gzipped := acceptsGzip(req.Header.Get("Accept-Encoding"))
		if gzipped {
			rsp.Header().Set("Content-Encoding", "gzip")
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
		parts := make([]part, 0, len(mfs)+32)
		seen := make(map[string]bool, len(mfs))
		for _, mf := range mfs {
			seen[mf.GetName()] = true
			if only == nil || only[mf.GetName()] {
				parts = append(parts, part{name: mf.GetName(), mf: mf})
			}
		}
		for _, e := range expositions {
			fams, err := e.Exposition(format, gzipped)
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

		w := &memberWriter{w: rsp, gzipped: gzipped}
		defer w.close()
		enc := expfmt.NewEncoder(w, format)
		encodeErr := func(err error) {
			if err != nil {
				logError("error encoding and sending metric family", err)
				encodeErrs.Inc()
			}
		}
		for _, p := range parts {
			if p.mf != nil {
				encodeErr(enc.Encode(p.mf))
			} else {
				encodeErr(w.writeEncoded(p.chunk))
			}
		}
		if c, ok := enc.(expfmt.Closer); ok {
			// The final "# EOF" of OpenMetrics, after every part.
			encodeErr(c.Close())
		}
	})
	if s.cfg.ScrapeTimeout <= 0 {
		return h
	}
	return http.TimeoutHandler(h, s.cfg.ScrapeTimeout, fmt.Sprintf(
		"Exceeded configured timeout of %v.\n", s.cfg.ScrapeTimeout))
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

func (m *memberWriter) close() { _ = m.endMember() }

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
