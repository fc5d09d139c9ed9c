package loki

import (
	"encoding/binary"
	"math/bits"
	"strconv"

	"github.com/klauspost/compress/s2"
)

// The push body is Loki's PushRequest (github.com/grafana/loki/pkg/push)
// in protobuf, written here straight from a batch's entries into one
// reused buffer, byte for byte what the wire types' Marshal writes
// (TestEncodeMatchesWireTypes, FuzzEncodeMatchesWireTypes): building
// PushRequest values first cost a copy of every entry and two passes of
// the gogo marshaller. Field numbers and order, from push.proto:
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
	// Pass 1: group by stream and size every message, so that each length
	// prefix can be written before its message.
	for _, id := range s.ids {
		s.pos[id] = -1
	}
	s.tpOK = false // topic indexes are the batch's
	s.ids, s.counts, s.sizes = s.ids[:0], s.counts[:0], s.sizes[:0]
	// Entry sizes by entry index, kept for pass 2's length prefixes.
	if cap(s.esz) < len(b.entries) {
		s.esz = make([]uint32, len(b.entries))
	}
	s.esz = s.esz[:len(b.entries)]
	for _, i := range idx {
		e := &b.entries[i]
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
		n := s.entrySize(b, e)
		s.esz[i] = uint32(n)
		s.sizes[p] += field(n)
	}
	total := 0
	for p, id := range s.ids {
		s.labels = append(s.labels[:p], c.streams.label(id))
		s.sizes[p] += field(len(s.labels[p]))
		total += field(s.sizes[p])
	}
	// Entries by stream, stably: a counting sort into s.order.
	if cap(s.order) < len(idx) {
		s.order = make([]int, len(idx))
	}
	s.order = s.order[:len(idx)]
	start := 0
	for p := range s.counts {
		n := s.counts[p]
		s.counts[p] = start
		start += n
	}
	for _, i := range idx {
		p := s.pos[b.entries[i].stream]
		s.order[s.counts[p]] = i
		s.counts[p]++
	}

	// Pass 2: write forward into a buffer that has room for all of it,
	// plus slack for putEntry's 8-byte stores past the last byte.
	if cap(dst)-len(dst) < total+slack {
		grown := make([]byte, len(dst), len(dst)+total+total/4+slack)
		copy(grown, dst)
		dst = grown
	}
	want := len(dst) + total
	buf := dst[:cap(dst)]
	w := len(dst)
	s.lastSec = 0
	next := 0
	for p := range s.ids {
		buf[w] = tagStreams
		w = putUvarint(buf, w+1, uint64(s.sizes[p]))
		w = len(appendString(buf[:w], tagLabels, s.labels[p]))
		for ; next < s.counts[p]; next++ {
			i := s.order[next]
			w = s.putEntry(buf, w, b, &b.entries[i], s.esz[i])
		}
	}
	if w != want {
		panic("loki: push body size mismatch") // sizes and writes disagree: a bug
	}
	dst = buf[:w]
	clear(s.labels) // do not keep label strings alive between pushes
	return dst
}

// entrySize is the size of e's Entry message.
func (s *sender) entrySize(b *batch, e *entry) int {
	n := field(timestampSize(e.ts))
	if e.n > 0 {
		n += field(int(e.n))
	}
	if s.c.meta {
		n += len(s.topicPartition(b, e))
		n += field(pairSize(len("offset"), decimalLen(e.offset)))
		if e.traceN > 0 {
			n += field(pairSize(len("trace_id"), int(e.traceN)))
		}
	}
	return n
}

// slack is the room putEntry may write past the body's end: one 8-byte
// store of the seconds' varint.
const slack = 8

// putEntry writes e's Entry field, its message size being size, at
// buf[w:] and returns where it ends. Entries of one push mostly share
// their second, so its varint is kept and written with one store.
func (s *sender) putEntry(buf []byte, w int, b *batch, e *entry, size uint32) int {
	sec, nsec := splitTime(e.ts)
	buf[w] = tagEntries
	w = putUvarint(buf, w+1, uint64(size))
	buf[w] = tagTime
	buf[w+1] = byte(splitSize(sec, nsec)) // at most 17: one byte
	w += 2
	if sec != 0 {
		if sec != s.lastSec {
			var v [16]byte
			v[0] = tagSeconds
			s.secLen = putUvarint(v[:], 1, uint64(sec))
			s.secWord = binary.LittleEndian.Uint64(v[:8])
			if s.secLen > 8 {
				s.secLen = 0 // before 1970 or after 2106: written each time
			}
			s.lastSec = sec
		}
		if s.secLen > 0 {
			binary.LittleEndian.PutUint64(buf[w:w+8], s.secWord)
			w += s.secLen
		} else {
			buf[w] = tagSeconds
			w = putUvarint(buf, w+1, uint64(sec))
		}
	}
	if nsec != 0 {
		buf[w] = tagNanos
		w = putUvarint(buf, w+1, uint64(nsec))
	}
	if e.n > 0 {
		buf[w] = tagLine
		w = putUvarint(buf, w+1, uint64(e.n))
		w += copy(buf[w:], b.buf[e.off:e.off+e.n])
	}
	if s.c.meta {
		w = s.putMetadata(buf, w, b, e)
	}
	return w
}

// putMetadata writes e's structured metadata at buf[w:].
func (s *sender) putMetadata(buf []byte, w int, b *batch, e *entry) int {
	w += copy(buf[w:], s.topicPartition(b, e))
	dst := appendNumberPair(buf[:w], "offset", e.offset)
	if e.traceN > 0 {
		dst = appendPair(dst, "trace_id", b.trace(e))
	}
	return len(dst)
}

// topicPartition is e's topic and partition metadata pairs, encoded. Most
// entries of a push share them, so the last ones are kept.
func (s *sender) topicPartition(b *batch, e *entry) []byte {
	if !s.tpOK || e.topic != s.tpTopic || e.partition != s.tpPartition {
		s.tp = appendPair(s.tp[:0], "topic", b.topics[e.topic])
		s.tp = appendNumberPair(s.tp, "partition", int64(e.partition))
		s.tpOK, s.tpTopic, s.tpPartition = true, e.topic, e.partition
	}
	return s.tp
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

func timestampSize(ts int64) int { return splitSize(splitTime(ts)) }

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
