package server

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
)

// renderKey is what a scrape's body depends on besides the metrics: the
// negotiated format (with its version and escaping) and gzip.
type renderKey struct {
	format  expfmt.Format
	gzipped bool
}

// encodings shares encoded scrape bodies between concurrent scrapes of one
// format, so that memory grows with the number of formats in use, not with
// the number of scrapers.
//
// A scrape joins the newest encoding of its format while that is still
// being made (it asked while the registry was being gathered, so the answer
// is as fresh as any), and otherwise starts a new one, so an idle server
// always answers with fresh values. Slow readers keep an encoding alive
// until they finish or the write timeout cuts them; once perKey encodings
// of a format are alive, scrapes join the newest instead of adding a
// further ~100 MB each. Under that abuse answers can be as old as the write
// timeout; memory stays at perKey bodies per format in use, plus one
// gather: only one encoding is made at a time.
type encodings struct {
	perKey int
	encode func(key renderKey, only map[string]bool, w io.Writer) (int, error)

	mu   sync.Mutex
	live map[renderKey][]*encoding // oldest first

	making sync.Mutex // one gather and encoding at a time
}

// encoding is one scrape body, immutable once done is closed.
type encoding struct {
	key      renderKey
	shared   bool          // in live, joinable
	gathered time.Time     // when its gather began: its values are at least this fresh
	done     chan struct{} // closed when chunks, size and err are set
	chunks   [][]byte
	size     int
	err      error
	refs     int // under encodings.mu: scrapes reading it, and its maker
}

// acquire returns the encoding a scrape of key serves; only (name[]) makes
// a private one. The caller must release it.
func (es *encodings) acquire(key renderKey, only map[string]bool) *encoding {
	es.mu.Lock()
	if only == nil {
		if gens := es.live[key]; len(gens) > 0 {
			newest := gens[len(gens)-1]
			if !isDone(newest) || len(gens) >= es.perKey {
				newest.refs++
				es.mu.Unlock()
				return newest
			}
		}
	}
	e := &encoding{key: key, shared: only == nil, done: make(chan struct{}), refs: 2}
	if e.shared {
		es.live[key] = append(es.live[key], e)
	}
	es.mu.Unlock()
	go func() {
		defer es.release(e)
		es.making.Lock()
		defer es.making.Unlock()
		var cw chunkWriter
		defer func() {
			// In the handler net/http would have recovered it; here a
			// panic would take the process down: answer 500 instead.
			if r := recover(); r != nil {
				e.size, e.err = 0, fmt.Errorf("encoding metrics panicked: %v", r)
			}
			e.chunks = cw.chunks
			close(e.done)
		}()
		e.gathered = time.Now()
		e.size, e.err = es.encode(key, only, &cw)
	}()
	return e
}

func (es *encodings) release(e *encoding) {
	es.mu.Lock()
	defer es.mu.Unlock()
	e.refs--
	if e.refs > 0 || !e.shared {
		return
	}
	gens := es.live[e.key]
	for i, g := range gens {
		if g == e {
			gens = append(gens[:i], gens[i+1:]...)
			break
		}
	}
	if len(gens) == 0 {
		delete(es.live, e.key)
	} else {
		es.live[e.key] = gens
	}
}

func isDone(e *encoding) bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// chunkWriter keeps what is written in fixed-size chunks: a growing single
// buffer of ~100 MB would copy itself over and over and peak at twice that.
type chunkWriter struct {
	chunks [][]byte
}

const chunkSize = 256 << 10

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(c.chunks) == 0 || len(c.chunks[len(c.chunks)-1]) == cap(c.chunks[len(c.chunks)-1]) {
			// Small registries get small bodies: start at 4 KiB, double.
			size := 4 << 10
			if len(c.chunks) > 0 {
				size = min(chunkSize, 2*cap(c.chunks[len(c.chunks)-1]))
			}
			c.chunks = append(c.chunks, make([]byte, 0, size))
		}
		last := &c.chunks[len(c.chunks)-1]
		k := min(len(p), cap(*last)-len(*last))
		*last = append(*last, p[:k]...)
		p = p[k:]
	}
	return n, nil
}
