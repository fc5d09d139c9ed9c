package loki

import (
	"strconv"
	"strings"
	"sync"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// maxLabelValue caps host and vhost label values: Loki rejects values over
// 2048 bytes by default, and a long one is a broken envelope, not a host.
const maxLabelValue = 128

// other is the value of host and vhost once the stream limit is reached.
const other = "__other__"

// streams is the table of label sets, shared by all appenders. Appenders
// cache the key -> id mapping themselves, so the lock here is taken once per
// new key per worker, not per line.
type streams struct {
	cfg config.LokiLabels

	mu     sync.Mutex
	ids    map[string]int32
	labels []string // by id: the label set in Loki's {a="b", ...} form
	limit  int
}

func newStreams(cfg config.LokiLabels) *streams {
	return &streams{cfg: cfg, ids: map[string]int32{}, limit: cfg.MaxStreams}
}

// key builds the lookup key of a line's labels into buf.
func (s *streams) key(buf []byte, host, vhost []byte, unparsed bool) []byte {
	buf = buf[:0]
	if s.cfg.Host {
		buf = append(buf, clip(host)...)
	}
	buf = append(buf, 0)
	if s.cfg.VHost {
		buf = append(buf, clip(vhost)...)
	}
	buf = append(buf, 0)
	if s.cfg.ParseStatus && unparsed {
		buf = append(buf, 'u')
	}
	return buf
}

func clip(b []byte) []byte {
	if len(b) > maxLabelValue {
		return b[:maxLabelValue]
	}
	return b
}

// id returns the stream id of key, adding it while under the limit; past
// the limit host and vhost become "__other__".
func (s *streams) id(key []byte) int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.ids[string(key)]; ok {
		return id
	}
	k := string(key)
	host, rest, _ := strings.Cut(k, "\x00")
	vhost, status, _ := strings.Cut(rest, "\x00")
	canon := k
	if len(s.labels) >= s.limit {
		if host != "" {
			host = other
		}
		if vhost != "" {
			vhost = other
		}
		canon = host + "\x00" + vhost + "\x00" + status
	}
	id, ok := s.ids[canon]
	if !ok {
		id = int32(len(s.labels))
		s.labels = append(s.labels, s.format(host, vhost, status == "u"))
		s.ids[canon] = id
	}
	// Keys folded into "__other__" are remembered only up to a bound, so
	// that a flood of distinct hosts cannot grow the map without end.
	if len(s.ids) < 4*s.limit+16 {
		s.ids[k] = id
	}
	return id
}

func (s *streams) format(host, vhost string, unparsed bool) string {
	// Label values must be UTF-8 (Loki parses them as Prometheus labels); a
	// raw log line, or a clip mid-rune, need not be. The same replacement
	// as the metrics' labels, so both name a vhost alike.
	host = strings.ToValidUTF8(host, "\uFFFD")
	vhost = strings.ToValidUTF8(vhost, "\uFFFD")
	var b strings.Builder
	b.WriteString(`{job=`)
	b.WriteString(strconv.Quote(s.cfg.Job))
	if host != "" {
		b.WriteString(`, host=`)
		b.WriteString(strconv.Quote(host))
	}
	if vhost != "" {
		b.WriteString(`, vhost=`)
		b.WriteString(strconv.Quote(vhost))
	}
	if s.cfg.ParseStatus {
		if unparsed {
			b.WriteString(`, parse_status="unparsed"`)
		} else {
			b.WriteString(`, parse_status="parsed"`)
		}
	}
	for _, e := range s.cfg.Extra {
		b.WriteString(", ")
		b.WriteString(e.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(e.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// label returns the label set of id.
func (s *streams) label(id int32) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.labels[id]
}

// count is the number of label sets made so far.
func (s *streams) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.labels)
}
