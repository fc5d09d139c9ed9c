package kafkahealth

import (
	"bytes"
	"compress/gzip"
	"iter"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// A large cluster gives hundreds of thousands of series (2,000 topics x 12
// partitions and 100 groups: ~193,000, 14 MB of text). Through a registry
// they cost client_golang's per-metric checks and the encoding at every
// scrape, ~0.5 s, most of a scrape timeout. They change only once per poll,
// so they are encoded once per poll instead, in the formats scrapes ask for,
// and a scrape copies bytes.

// renderKey is what a scrape asks for: the negotiated format (with its
// version and escaping, so that the bytes are exactly what promhttp would
// write for it) and whether the bytes are gzip members.
type renderKey struct {
	format  expfmt.Format
	gzipped bool
}

// rendering is one snapshot encoded in one format, one chunk per family in
// name order, so that the server can interleave them with its registry's
// families and filter them by name.
type rendering struct {
	names  []string
	chunks [][]byte
	err    error
}

// Exposition returns the last good poll's cluster series encoded in format
// f, one chunk per metric family in name order, for OpenMetrics without the
// closing "# EOF". With gzipped each chunk is a whole gzip member: RFC 1952
// lets a stream be a series of members, and Go's reader (Prometheus's)
// reads them as one. Nothing when no poll has succeeded yet or the last
// result went stale.
//
// The first request of a format encodes the snapshot (~0.3 s for the large
// cluster); from then on every poll encodes it in that format before
// publishing, so scrapes only copy bytes.
func (h *Poller) Exposition(f expfmt.Format, gzipped bool) (iter.Seq2[string, []byte], error) {
	key := renderKey{f, gzipped}
	h.wantMu.Lock()
	if !h.wanted[key] {
		if h.wanted == nil {
			h.wanted = map[renderKey]bool{}
		}
		h.wanted[key] = true
	}
	h.wantMu.Unlock()
	s := h.last.Load()
	if s == nil {
		return func(func(string, []byte) bool) {}, nil
	}
	r := s.render(key, nil)
	if r.err != nil {
		return nil, r.err
	}
	return func(yield func(string, []byte) bool) {
		for i, name := range r.names {
			if !yield(name, r.chunks[i]) {
				return
			}
		}
	}, nil
}

// ClusterGatherer gathers the last good poll's cluster series (without
// Self's), for what needs families rather than bytes, such as push mode.
func (h *Poller) ClusterGatherer() prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		s := h.last.Load()
		if s == nil {
			return nil, nil
		}
		return s.gather()
	})
}

// renderWanted encodes s in every format asked for so far, gathering its
// families once for all of them.
func (h *Poller) renderWanted(s *healthSnapshot) {
	h.wantMu.Lock()
	keys := make([]renderKey, 0, len(h.wanted))
	for k := range h.wanted {
		keys = append(keys, k)
	}
	h.wantMu.Unlock()
	// Plain first: the gzip members of a format compress its plain chunks.
	slices.SortFunc(keys, func(a, b renderKey) int {
		if a.gzipped != b.gzipped {
			if a.gzipped {
				return 1
			}
			return -1
		}
		return strings.Compare(string(a.format), string(b.format))
	})
	if len(keys) == 0 {
		return
	}
	mfs, err := s.gather()
	if err != nil {
		h.log.Warn("kafka health: gathering the cluster series", "err", err)
		return // each scrape retries, and reports the error
	}
	for _, k := range keys {
		if r := s.render(k, mfs); r.err != nil {
			h.log.Warn("kafka health: encoding the cluster series", "format", k.format, "gzip", k.gzipped, "err", r.err)
		}
	}
}

// snapshotCollector collects one snapshot's series, so that a registry can
// turn them into families with the same checks and order as a scrape of
// Poller as a collector.
type snapshotCollector struct{ s *healthSnapshot }

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range healthDescs {
		ch <- d
	}
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.s.metrics {
		ch <- m
	}
}

func (s *healthSnapshot) gather() ([]*dto.MetricFamily, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(snapshotCollector{s}); err != nil {
		return nil, err
	}
	return reg.Gather()
}

// render returns s encoded as k asks, encoding it the first time; mfs are
// s's families when the caller has them. Concurrent callers of one key wait
// for one encoding.
func (s *healthSnapshot) render(k renderKey, mfs []*dto.MetricFamily) *rendering {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.renders[k]; ok {
		return r
	}
	r := &rendering{}
	defer func() {
		if r.err == nil {
			if s.renders == nil {
				s.renders = map[renderKey]*rendering{}
			}
			s.renders[k] = r
		}
	}()
	if mfs == nil {
		if mfs, r.err = s.gather(); r.err != nil {
			return r
		}
	}
	// The plain encoding of another key of the same format is reused for
	// its gzip members.
	var plain *rendering
	if k.gzipped {
		plain = s.renders[renderKey{k.format, false}]
	}
	var buf bytes.Buffer
	var gz *gzip.Writer
	if k.gzipped {
		gz = gzip.NewWriter(nil)
	}
	r.names = make([]string, len(mfs))
	r.chunks = make([][]byte, len(mfs))
	for i, mf := range mfs {
		r.names[i] = mf.GetName()
		var b []byte
		if plain != nil {
			b = plain.chunks[i]
		} else {
			buf.Reset()
			if r.err = expfmt.NewEncoder(&buf, k.format).Encode(mf); r.err != nil {
				return r
			}
			b = buf.Bytes()
		}
		if !k.gzipped {
			r.chunks[i] = bytes.Clone(b)
			continue
		}
		var zb bytes.Buffer
		gz.Reset(&zb)
		if _, r.err = gz.Write(b); r.err != nil {
			return r
		}
		if r.err = gz.Close(); r.err != nil {
			return r
		}
		r.chunks[i] = zb.Bytes()
	}
	return r
}
