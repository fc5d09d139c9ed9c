package loki

import (
	"time"
	"unsafe"
)

// entry is one line of a batch. buf[msgOff:msgOff+msgN] is its Entry
// field of the push body, written by Add; the line is buf[off:off+n]
// within it.
type entry struct {
	ts           int64
	msgOff, msgN uint32
	off, n       uint32
	stream       int32
	partition    int32
	offset       int64
	traceOff     uint32
	traceN       uint16
	topic        uint16
}

// batch is one push's worth of lines, sealed once full (batch.max_bytes
// of line bytes) or old. Its buffer holds the lines as Entry fields of the
// push body; it is not written after sealing, so entries can point into it
// as strings.
type batch struct {
	buf       []byte
	entries   []entry
	lineBytes int64
	topics    []string
	acks      []Acker
	lastAck   Acker
	created   time.Time
}

func (b *batch) topicIndex(t string) uint16 {
	for i, x := range b.topics {
		if x == t {
			return uint16(i)
		}
	}
	b.topics = append(b.topics, t)
	return uint16(len(b.topics) - 1)
}

func (b *batch) line(e *entry) string {
	if e.n == 0 {
		return ""
	}
	return unsafe.String(&b.buf[e.off], int(e.n))
}

func (b *batch) trace(e *entry) string {
	if e.traceN == 0 {
		return ""
	}
	return unsafe.String(&b.buf[e.traceOff], int(e.traceN))
}

func (b *batch) release() {
	for _, a := range b.acks {
		a.Release()
	}
	b.acks = nil
}
