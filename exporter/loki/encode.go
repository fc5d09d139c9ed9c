package loki

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"strconv"
	"unsafe"

	"github.com/klauspost/compress/s2"
)

// The push body is Loki's PushRequest (github.com/grafana/loki/pkg/push)
// in protobuf, byte for byte what the wire types' Marshal writes
// (TestEncodeMatchesWireTypes, FuzzEncodeMatchesWireTypes): building
// PushRequest values first cost a copy of every entry and two passes of
// the gogo marshaller. Add writes each line as its whole Entry field into
// the batch (entryWriter), so the push only groups those by stream behind
// their Stream headers, into one reused buffer. Field numbers and order,
// from push.proto:
//
//	PushRequest { repeated Stream streams = 1; }
//	Stream      { string labels = 1; repeated Entry entries = 2; }   (hash = 3 unset)
//	Entry       { Timestamp timestamp = 1; string line = 2;
//	              repeated LabelPair structuredMetadata = 3; }
//	LabelPair   { string name = 1; string value = 2; }
//	Timestamp   { int64 seconds = 1; int32 nanos = 2; }
//
// Empty strings and zero numbers are left out (proto3), except the entry's
// timestamp, which is always present (gogo's non-nullable stdtime).
const (
	tagStreams  = 1<<3 | 2 // PushRequest.streams, length-delimited
	tagLabels   = 1<<3 | 2 // Stream.labels
	tagEntries  = 2<<3 | 2 // Stream.entries
	tagTime     = 1<<3 | 2 // Entry.timestamp
	tagLine     = 2<<3 | 2 // Entry.line
	tagMetadata = 3<<3 | 2 // Entry.structuredMetadata
	tagName     = 1<<3 | 2 // LabelPair.name
	tagValue    = 2<<3 | 2 // LabelPair.value
	tagSeconds  = 1 << 3   // Timestamp.seconds, varint (wire type 0)
	tagNanos    = 2 << 3   // Timestamp.nanos, varint (wire type 0)
)

// encode builds the snappy-compressed protobuf body of b's entries idx
// into s.body, reusing the sender's buffers.
func (s *sender) encode(b *batch, idx []int) {
	s.raw = s.appendPush(s.raw[:0], b, idx)
	if n := s2.MaxEncodedLen(len(s.raw)); cap(s.body) < n {
		s.body = make([]byte, n+n/4)
	}
	// Snappy's block format, as Loki reads it; s2's encoder is about twice
	// as fast as golang/snappy's (docs/performance.md, "Log-store push").
	s.body = s2.EncodeSnappy(s.body[:cap(s.body)], s.raw)
}

// appendPush appends the PushRequest of b's entries idx to dst: streams in
// the order their first entry appears, each stream's entries in batch order.
func (s *sender) appendPush(dst []byte, b *batch, idx []int) []byte {
	c := s.c
	// Pass 1: cut the entries into runs of one stream that lie back to
	// back in the batch buffer (a run is copied at once; lines of one
	// source mostly share a stream), and size every Stream message, so that
	// each length prefix can be written before its message.
	for _, id := range s.ids {
		s.pos[id] = -1
	}
	s.ids, s.counts, s.sizes, s.runs = s.ids[:0], s.counts[:0], s.sizes[:0], s.runs[:0]
	stream, end := int32(-1), uint32(0)
	for _, i := range idx {
		e := &b.entries[i]
		if e.stream == stream && e.msgOff == end {
			end += e.msgN
			continue
		}
		if len(s.runs) > 0 {
			s.runs[len(s.runs)-1].end = end
		}
		for int(e.stream) >= len(s.pos) {
			s.pos = append(s.pos, -1)
		}
		p := s.pos[e.stream]
		if p < 0 {
			p = int32(len(s.ids))
			s.pos[e.stream] = p
			s.ids = append(s.ids, e.stream)
			s.counts = append(s.counts, 0)
			s.sizes = append(s.sizes, 0)
		}
		s.counts[p]++
		s.runs = append(s.runs, run{off: e.msgOff, pos: p})
		stream, end = e.stream, e.msgOff+e.msgN
	}
	if len(s.runs) > 0 {
		s.runs[len(s.runs)-1].end = end
	}
	for _, r := range s.runs {
		s.sizes[r.pos] += int(r.end - r.off)
	}
	total := 0
	for p, id := range s.ids {
		s.labels = append(s.labels[:p], c.streams.label(id))
		s.sizes[p] += field(len(s.labels[p]))
		total += field(s.sizes[p])
	}
	// Runs by stream, stably: a counting sort into s.order.
	if cap(s.order) < len(s.runs) {
		s.order = make([]int, len(s.runs))
	}
	s.order = s.order[:len(s.runs)]
	start := 0
	for p := range s.counts {
		n := s.counts[p]
		s.counts[p] = start
		start += n
	}
	for r := range s.runs {
		p := s.runs[r].pos
		s.order[s.counts[p]] = r
		s.counts[p]++
	}

	// Pass 2: write forward into a buffer that has room for all of it.
	if cap(dst)-len(dst) < total {
		grown := make([]byte, len(dst), len(dst)+total+total/4)
		copy(grown, dst)
		dst = grown
	}
	want := len(dst) + total
	next := 0
	for p := range s.ids {
		dst = append(dst, tagStreams)
		dst = binary.AppendUvarint(dst, uint64(s.sizes[p]))
		dst = appendString(dst, tagLabels, s.labels[p])
		for ; next < s.counts[p]; next++ {
			r := &s.runs[s.order[next]]
			dst = append(dst, b.buf[r.off:r.end]...)
		}
	}
	if len(dst) != want {
		panic("loki: push body size mismatch") // sizes and writes disagree: a bug
	}
	clear(s.labels) // do not keep label strings alive between pushes
	return dst
}

// run is entries of one stream back to back in a batch's buffer:
// buf[off:end], the Stream at position pos of the push.
type run struct {
	off, end uint32
	pos      int32
}

// entryWriter writes Entry fields of the push body into a batch.
type entryWriter struct {
	// the last Timestamp.seconds written, as its tag and varint: lines
	// mostly share their second, so its varint is written with one store
	lastSec int64
	secWord uint64
	secLen  int
}

// slack is the room put may write past an entry's end: one 8-byte store
// of the seconds' varint.
const slack = 8

// put appends e's Entry field to b.buf: its timestamp, line and, with
// tp not empty, the structured metadata (tp, the offset, the trace id). It
// sets e's msgOff, msgN and off.
func (ew *entryWriter) put(b *batch, e *entry, line, tp, trace []byte) {
	sec, nsec := splitTime(e.ts)
	tsSize := splitSize(sec, nsec) // at most 17: one byte
	size := 2 + tsSize
	if len(line) > 0 {
		size += field(len(line))
	}
	if len(tp) > 0 {
		size += len(tp) + field(pairSize(len("offset"), decimalLen(e.offset)))
		if len(trace) > 0 {
			size += field(pairSize(len("trace_id"), len(trace)))
		}
	}
	buf := b.buf
	if need := 1 + binary.MaxVarintLen32 + size + slack; cap(buf)-len(buf) < need {
		buf = slices.Grow(buf, need+cap(buf)/4)
	}
	w := len(buf)
	e.msgOff = uint32(w)
	buf = buf[:cap(buf)]
	buf[w] = tagEntries
	w = putUvarint(buf, w+1, uint64(size))
	buf[w] = tagTime
	buf[w+1] = byte(tsSize)
	w += 2
	if sec != 0 {
		if sec != ew.lastSec || ew.secLen == 0 {
			var v [16]byte
			v[0] = tagSeconds
			ew.secLen = putUvarint(v[:], 1, uint64(sec))
			ew.secWord = binary.LittleEndian.Uint64(v[:8])
			if ew.secLen > 8 {
				ew.secLen = 0 // before 1970 or after 2106: written each time
			}
			ew.lastSec = sec
		}
		if ew.secLen > 0 {
			binary.LittleEndian.PutUint64(buf[w:w+8], ew.secWord)
			w += ew.secLen
		} else {
			buf[w] = tagSeconds
			w = putUvarint(buf, w+1, uint64(sec))
		}
	}
	if nsec != 0 {
		buf[w] = tagNanos
		w = putUvarint(buf, w+1, uint64(nsec))
	}
	if len(line) > 0 {
		buf[w] = tagLine
		w = putUvarint(buf, w+1, uint64(len(line)))
		e.off = uint32(w)
		w += copy(buf[w:], line)
	}
	if len(tp) > 0 {
		w += copy(buf[w:], tp)
		dst := appendNumberPair(buf[:w], "offset", e.offset)
		if len(trace) > 0 {
			dst = appendPair(dst, "trace_id", bytesString(trace))
			e.traceOff = uint32(len(dst) - len(trace))
		}
		w = len(dst)
	}
	e.msgN = uint32(w) - e.msgOff
	b.buf = buf[:w]
}

// putUvarint writes v at buf[w:] and returns where it ends.
func putUvarint(buf []byte, w int, v uint64) int {
	for v >= 0x80 {
		buf[w] = byte(v) | 0x80
		v >>= 7
		w++
	}
	buf[w] = byte(v)
	return w + 1
}

// splitTime is what time.Unix(0, ts) holds as Unix() and Nanosecond().
func splitTime(ts int64) (sec int64, nsec int64) {
	sec, nsec = ts/1e9, ts%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return sec, nsec
}

func splitSize(sec, nsec int64) int {
	n := 0
	if sec != 0 {
		n += 1 + uvarintLen(uint64(sec))
	}
	if nsec != 0 {
		n += 1 + uvarintLen(uint64(nsec))
	}
	return n
}

// field is the size of a length-delimited field of n bytes with a one-byte
// tag.
func field(n int) int { return 1 + uvarintLen(uint64(n)) + n }

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func pairSize(name, value int) int {
	n := 0
	if name > 0 {
		n += field(name)
	}
	if value > 0 {
		n += field(value)
	}
	return n
}

// decimalLen is len(strconv.FormatInt(v, 10)).
func decimalLen(v int64) int {
	n := 1
	u := uint64(v)
	if v < 0 {
		n, u = 2, -u
	}
	u |= 1 // 0 has one digit, like 1
	// floor(log10(u)) is t or t-1, with t from the bit length.
	t := bits.Len64(u) * 1233 >> 12
	if u < pow10[t] {
		t--
	}
	return n + t
}

var pow10 = [20]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// bytesString is b as a string, for appending only: it must not outlive b's
// next write.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func appendString(dst []byte, tag byte, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

func appendPair(dst []byte, name, value string) []byte {
	dst = append(dst, tagMetadata)
	dst = binary.AppendUvarint(dst, uint64(pairSize(len(name), len(value))))
	dst = appendString(dst, tagName, name)
	return appendString(dst, tagValue, value)
}

func appendNumberPair(dst []byte, name string, v int64) []byte {
	n := decimalLen(v)
	dst = append(dst, tagMetadata)
	dst = binary.AppendUvarint(dst, uint64(pairSize(len(name), n)))
	dst = appendString(dst, tagName, name)
	dst = append(dst, tagValue)
	dst = binary.AppendUvarint(dst, uint64(n))
	return strconv.AppendInt(dst, v, 10)
}
