package metrics

import (
	"encoding/binary"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
)

// A series key is the line's label values, each as a uvarint length and the
// bytes, so that no value can run into the next. It is written into a
// buffer of fixed size by index rather than appended: appends are calls,
// and around each one Go spilled and reloaded the loop's state (about 40%
// of the key's cost). Values from a fixed set are stored pre-encoded as two
// words; only values taken from the line are copied.

// keySmall is Observe's key buffer: it is zeroed on every line, and the
// default labels with a vhost up to about 90 bytes fit. Longer keys take
// keyLarge, then the heap (see seriesOf).
const (
	keySmall = 128
	keyLarge = 512
	// keySlack is the room a value from a fixed set needs: its two words.
	keySlack = 16
)

// fixedKey is a value from a fixed set, encoded (length and bytes, at most
// keySlack-1 bytes), as two little-endian words padded with zeros.
type fixedKey struct {
	w [2]uint64
	n int
}

func newFixedKey(v string) fixedKey {
	var b [keySlack]byte
	if len(v) >= keySlack {
		panic("metrics: fixed label value too long: " + v)
	}
	b[0] = byte(len(v))
	copy(b[1:], v)
	return fixedKey{w: [2]uint64{binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])}, n: 1 + len(v)}
}

var (
	keyUnknown  = newFixedKey(unknown)
	keyNone     = newFixedKey(none)
	keyOverflow = newFixedKey(overflow)
	keyUnlisted = newFixedKey(unlisted)
	methodKeys  = func() (k [len(methodNames)]fixedKey) {
		for i, v := range methodNames {
			k[i] = newFixedKey(v)
		}
		return k
	}()
	// classKeys is indexed by status/100, 0 for a status outside 100..599.
	classKeys = [6]fixedKey{keyUnknown, newFixedKey("1xx"), newFixedKey("2xx"), newFixedKey("3xx"), newFixedKey("4xx"), newFixedKey("5xx")}
	// statusKeys[s-100] is the encoded status s: its length (3) and digits.
	statusKeys = func() (k [500]uint32) {
		for i := range k {
			var b [4]byte
			appendStatus(b[:1], 100+i)
			b[0] = 3
			k[i] = binary.LittleEndian.Uint32(b[:])
		}
		return k
	}()
	// statusClassKeys[s-100] is the encoded status s then its class, for
	// putDefaultKey: one word.
	statusClassKeys = func() (k [500]uint64) {
		for i := range k {
			k[i] = uint64(statusKeys[i]) | classKeys[(100+i)/100].w[0]<<32
		}
		return k
	}()
)

// putKey writes the key of r's label set into k and returns it, or nil
// when it may not fit in k. With fold, the labels whose values come from
// the outside world unbounded (vhost, route, upstream, host, var_NAME) are
// "__other__" and only those with a fixed set of values (method, status,
// status_class) are kept: the key of the line's label set once max_series
// is reached.
func (m *Requests) putKey(k []byte, r *accesslog.Record, fold bool) []byte {
	var fi *formatInfo
	n := 0
	for i := range m.dims {
		if len(k)-n < keySlack {
			return nil
		}
		d := &m.dims[i]
		if fold && d.kind.unbounded() {
			n = putFixed(k, n, &keyOverflow)
			continue
		}
		switch d.kind {
		case labelVHost:
			switch {
			case len(r.VHost) == 0:
				if fi == nil {
					fi = m.format(r.Format)
				}
				n = putFormatVHost(k, n, fi)
			case m.vhosts == nil || m.vhosts.listed(r.VHost):
				n = putValue(k, n, r.VHost)
			default:
				n = putFixed(k, n, &keyUnlisted)
			}
		case labelMethod:
			n = putFixed(k, n, &methodKeys[methodIndex(r.Method)])
		case labelStatus:
			if s := uint(r.Status - 100); s < uint(len(statusKeys)) {
				binary.LittleEndian.PutUint32(k[n:], statusKeys[s])
				n += 4
			} else {
				n = putFixed(k, n, &keyUnknown)
			}
		case labelStatusClass:
			c := 0
			if s := r.Status; s >= 100 && s <= 599 {
				c = s / 100
			}
			n = putFixed(k, n, &classKeys[c])
		case labelRoute:
			// Declared here, the buffer is zeroed only for the route label.
			var route [maxRouteLen + 8]byte
			n = putValue(k, n, m.router.appendRoute(route[:0], r.Path))
		case labelUpstream:
			n = putOr(k, n, r.UpstreamAddr)
		case labelHost:
			n = putOr(k, n, r.Host)
		case labelVar:
			if fi == nil {
				fi = m.format(r.Format)
			}
			n = putOr(k, n, r.Var(fi.slots[d.v]))
		}
		if n < 0 {
			return nil
		}
	}
	return k[:n]
}

// putFormatVHost writes the vhost of lines that log none, or returns -1
// when it does not fit.
func putFormatVHost(k []byte, n int, fi *formatInfo) int {
	if fi.vhostShort {
		return putFixed(k, n, &fi.vhostFixed)
	}
	if len(fi.vhostKey) > len(k)-n {
		return -1
	}
	return n + copy(k[n:], fi.vhostKey)
}

// putDefaultKey is putKey(k, r, false) for the default labels (vhost,
// method, status, status_class) in straight-line code: the loop over the
// dimensions and its switch cost about as much again as the values.
func (m *Requests) putDefaultKey(k *[keySmall]byte, r *accesslog.Record) []byte {
	// Past the vhost, three values from fixed sets follow.
	const vhostRoom = keySmall - 3*keySlack
	var n int
	switch {
	case len(r.VHost) == 0:
		fi := m.firstFormat.Load()
		if fi.f != r.Format {
			fi = m.format(r.Format)
		}
		n = putFormatVHost(k[:vhostRoom], 0, fi)
	case m.vhosts == nil || m.vhosts.listed(r.VHost):
		n = putValue(k[:vhostRoom], 0, r.VHost)
	default:
		n = putFixed(k[:], 0, &keyUnlisted)
	}
	if n < 0 {
		return nil
	}
	n = putFixed(k[:], n, &methodKeys[methodIndex(r.Method)])
	if s := uint(r.Status - 100); s < uint(len(statusClassKeys)) {
		binary.LittleEndian.PutUint64(k[n:], statusClassKeys[s])
		return k[:n+8]
	}
	n = putFixed(k[:], n, &keyUnknown)
	n = putFixed(k[:], n, &keyUnknown)
	return k[:n]
}

// isDefaultKey reports whether dims are the default labels, for
// putDefaultKey.
func isDefaultKey(dims []dim) bool {
	want := []labelKind{labelVHost, labelMethod, labelStatus, labelStatusClass}
	if len(dims) != len(want) {
		return false
	}
	for i, d := range dims {
		if d.kind != want[i] {
			return false
		}
	}
	return true
}

// putFixed writes e at k[n:], which has keySlack bytes free.
func putFixed(k []byte, n int, e *fixedKey) int {
	binary.LittleEndian.PutUint64(k[n:], e.w[0])
	binary.LittleEndian.PutUint64(k[n+8:], e.w[1])
	return n + e.n
}

// putValue writes v, cut to maxValueLen, at k[n:], or returns -1 when it
// does not fit.
func putValue(k []byte, n int, v []byte) int {
	if len(v) > maxValueLen {
		v = v[:maxValueLen]
	}
	if len(v)+2 > len(k)-n {
		return -1
	}
	// The uvarint of a length below 2^14.
	if len(v) < 0x80 {
		k[n] = byte(len(v))
		n++
	} else {
		k[n] = byte(len(v)) | 0x80
		k[n+1] = byte(len(v) >> 7)
		n += 2
	}
	return n + copy(k[n:], v)
}

// putOr is putValue, with none for an empty v.
func putOr(k []byte, n int, v []byte) int {
	if len(v) == 0 {
		return putFixed(k, n, &keyNone)
	}
	return putValue(k, n, v)
}

// seriesOf returns the series of r's label set.
func (m *Requests) seriesOf(r *accesslog.Record) *series {
	// The key is built on the stack: cheaper than a sync.Pool, and workers
	// share nothing.
	var kb [keySmall]byte
	var key []byte
	if m.defaultKey {
		key = m.putDefaultKey(&kb, r)
	} else {
		key = m.putKey(kb[:], r, false)
	}
	if key != nil {
		return m.lookup(key, r)
	}
	return m.seriesOfLong(r)
}

//go:noinline
func (m *Requests) seriesOfLong(r *accesslog.Record) *series {
	var kb [keyLarge]byte
	return m.lookup(m.longKey(kb[:], r, false), r)
}

// longKey is the key when it may not fit in keySmall: in k when it fits,
// else on the heap (several long var_ labels).
func (m *Requests) longKey(k []byte, r *accesslog.Record, fold bool) []byte {
	for {
		if key := m.putKey(k, r, fold); key != nil {
			return key
		}
		k = make([]byte, 2*len(k))
	}
}
