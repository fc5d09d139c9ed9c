package loki

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// wireTypesBody is the push body as the wire types build it: one
// push.PushRequest with streams in first-appearance order, marshalled by
// gogo. appendPush must write the same bytes.
func wireTypesBody(t testing.TB, s *sender, b *batch, idx []int) []byte {
	t.Helper()
	var req push.PushRequest
	pos := map[int32]int{}
	for _, i := range idx {
		e := &b.entries[i]
		p, ok := pos[e.stream]
		if !ok {
			p = len(req.Streams)
			pos[e.stream] = p
			req.Streams = append(req.Streams, push.Stream{Labels: s.c.streams.label(e.stream)})
		}
		pe := push.Entry{Timestamp: time.Unix(0, e.ts), Line: b.line(e)}
		if s.c.meta {
			pe.StructuredMetadata = push.LabelsAdapter{
				{Name: "topic", Value: b.topics[e.topic]},
				{Name: "partition", Value: strconv.Itoa(int(e.partition))},
				{Name: "offset", Value: strconv.FormatInt(e.offset, 10)},
			}
			if tr := b.trace(e); tr != "" {
				pe.StructuredMetadata = append(pe.StructuredMetadata, push.LabelAdapter{Name: "trace_id", Value: tr})
			}
		}
		req.Streams[p].Entries = append(req.Streams[p].Entries, pe)
	}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// encodeLines adds lines to a fresh client's appender and returns the
// sealed batch: line i goes to stream hosts[i%len(hosts)] at times[i].
func encodeLines(t testing.TB, meta bool, topic string, hosts []string, lines [][]byte, times []time.Time, traces [][]byte) (*sender, *batch) {
	t.Helper()
	cfg := testConfig("http://127.0.0.1:1")
	cfg.Batch.MaxBytes = 1 << 20 // each input here fits one batch
	cfg.StructuredMetadata = meta
	cfg.Labels.VHost = true
	c, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := c.NewAppender()
	a.Append(topic, 7, &countAck{}, func() {
		for i, l := range lines {
			line := Line{Time: times[i], Line: l, Host: []byte(hosts[i%len(hosts)]), VHost: []byte("v"), Offset: int64(i) * 977}
			if i < len(traces) {
				line.TraceID = traces[i]
			}
			a.Add(&line)
		}
	})
	c.Flush()
	b := c.dequeue()
	if b == nil {
		t.Fatal("no batch sealed")
	}
	return &sender{c: c}, b
}

// checkEncode compares the body of idx with the wire types' and checks that
// golang/snappy decodes the compressed body back to it.
func checkEncode(t testing.TB, s *sender, b *batch, idx []int) {
	t.Helper()
	want := wireTypesBody(t, s, b, idx)
	s.encode(b, idx)
	if !bytes.Equal(s.raw, want) {
		t.Fatalf("protobuf body differs from push.PushRequest.Marshal:\n got %x\nwant %x", s.raw, want)
	}
	dec, err := snappy.Decode(nil, s.body)
	if err != nil {
		t.Fatalf("golang/snappy cannot decode the body: %v", err)
	}
	if !bytes.Equal(dec, want) {
		t.Fatal("golang/snappy decodes the body to something else")
	}
}

func TestEncodeMatchesWireTypes(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160 KB: multi-byte lengths, snappy copies
	for _, tc := range []struct {
		name  string
		meta  bool
		topic string
		hosts []string
		lines [][]byte
		times []time.Time
		trace [][]byte
		idx   []int // nil: every entry
	}{
		{name: "one line", hosts: []string{"web-1"}, lines: [][]byte{[]byte("GET /")}, times: []time.Time{time.Unix(1700000000, 5)}},
		{name: "streams interleaved", hosts: []string{"a", "b", "c"},
			lines: [][]byte{[]byte("1"), []byte("2"), []byte("3"), []byte("4"), []byte("5"), []byte("6"), []byte("7")},
			times: []time.Time{time.Unix(1, 0), time.Unix(2, 0), time.Unix(3, 0), time.Unix(4, 0), time.Unix(5, 0), time.Unix(6, 0), time.Unix(7, 0)}},
		{name: "empty line and zero time", hosts: []string{"a"}, lines: [][]byte{{}, []byte("x")}, times: []time.Time{time.Unix(0, 0), time.Unix(0, 0)}},
		{name: "before 1970", hosts: []string{"a"}, lines: [][]byte{[]byte("old"), []byte("older")}, times: []time.Time{time.Unix(-5, 3), time.Unix(-1e9, 999999999)}},
		{name: "long line", hosts: []string{"a", "b"}, lines: [][]byte{long, []byte("short"), long}, times: []time.Time{time.Unix(1700000000, 0), time.Unix(1700000001, 0), time.Unix(1700000002, 0)}},
		{name: "metadata", meta: true, topic: "nginxlog", hosts: []string{"a", "b"},
			lines: [][]byte{[]byte("one"), []byte("two"), []byte("three")},
			times: []time.Time{time.Unix(1700000000, 0), time.Unix(1700000000, 1), time.Unix(1700000000, 2)},
			trace: [][]byte{[]byte("4bf92f3577b34da6a3ce929d0e0e4736"), nil, []byte("t")}},
		{name: "metadata, empty topic", meta: true, hosts: []string{"a"}, lines: [][]byte{[]byte("x")}, times: []time.Time{time.Unix(1700000000, 0)}},
		{name: "a split half", meta: true, topic: "t", hosts: []string{"a", "b", "c"},
			lines: [][]byte{[]byte("0"), []byte("1"), []byte("2"), []byte("3"), []byte("4"), []byte("5")},
			times: []time.Time{time.Unix(10, 0), time.Unix(11, 0), time.Unix(12, 0), time.Unix(13, 0), time.Unix(14, 0), time.Unix(15, 0)},
			idx:   []int{1, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, b := encodeLines(t, tc.meta, tc.topic, tc.hosts, tc.lines, tc.times, tc.trace)
			idx := tc.idx
			if idx == nil {
				idx = s.deliverIdx(b)
			}
			checkEncode(t, s, b, idx)
			// Again with the sender's buffers in use: nothing stale leaks.
			checkEncode(t, s, b, idx[:1])
			checkEncode(t, s, b, idx)
		})
	}
}

// FuzzEncodeMatchesWireTypes: any lines, stream choices, times and trace
// ids give the wire types' bytes, and golang/snappy decodes the body.
func FuzzEncodeMatchesWireTypes(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), false, int64(1700000000e9), uint8(2))
	f.Add([]byte("x\x00y\nz"), true, int64(-1), uint8(3))
	f.Add(bytes.Repeat([]byte("abc\n"), 300), true, int64(0), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, meta bool, base int64, nhosts uint8) {
		lines := bytes.Split(data, []byte("\n"))
		hosts := make([]string, int(nhosts%5)+1)
		for i := range hosts {
			hosts[i] = fmt.Sprintf("h%d", i)
		}
		times := make([]time.Time, len(lines))
		traces := make([][]byte, len(lines))
		for i, l := range lines {
			times[i] = time.Unix(0, base+int64(i)*1_000_003)
			if len(l) > 0 && l[0]%2 == 0 {
				traces[i] = l[:min(len(l), 40)]
			}
		}
		s, b := encodeLines(t, meta, "topic-x", hosts, lines, times, traces)
		idx := s.deliverIdx(b)
		checkEncode(t, s, b, idx)
		if len(idx) > 1 {
			checkEncode(t, s, b, idx[len(idx)/2:])
		}
	})
}

// Entries of several topics and partitions in one batch: each gets its own
// topic and partition pairs.
func TestEncodeTopicsAndPartitions(t *testing.T) {
	c := unsentClient(t, 1<<20, true)
	a := c.NewAppender()
	for i, src := range []struct {
		topic     string
		partition int32
	}{{"a", 0}, {"b", 0}, {"b", 1}, {"a", 1}, {"a", 1}, {"a", -7}, {"a", 123456}} {
		a.Append(src.topic, src.partition, &countAck{}, func() {
			for j := range 3 {
				a.Add(&Line{Time: time.Unix(1700000000, 0), Line: []byte("l"), Host: []byte{'h', byte('0' + j)}, Offset: int64(i*10 + j)})
			}
		})
	}
	c.Flush()
	b := c.dequeue()
	if b == nil || len(b.entries) != 21 {
		t.Fatalf("batch %v, want 21 entries", b)
	}
	s := &sender{c: c}
	idx := s.deliverIdx(b)
	checkEncode(t, s, b, idx)
	checkEncode(t, s, b, []int{0, 20})
}

func TestDecimalLen(t *testing.T) {
	vs := []int64{0, 1, -1, 9, 10, -10, 99, 100, math.MaxInt64, math.MinInt64, math.MaxInt64 / 10, math.MinInt64 / 10}
	for p := int64(1); p <= 1e18 && p > 0; p *= 10 {
		vs = append(vs, p-1, p, p+1, -p+1, -p, -p-1)
	}
	for _, v := range vs {
		if got, want := decimalLen(v), len(strconv.FormatInt(v, 10)); got != want {
			t.Errorf("decimalLen(%d) = %d, want %d", v, got, want)
		}
	}
}

// Encoding reuses the sender's buffers: no allocation per push, so none
// per line.
func TestEncodeAllocatesNothing(t *testing.T) {
	for _, meta := range []bool{false, true} {
		c, b := benchBatch(t, meta, 2000)
		s := &sender{c: c}
		idx := s.deliverIdx(b)
		s.encode(b, idx)
		if n := testing.AllocsPerRun(20, func() { s.encode(b, idx) }); n != 0 {
			t.Errorf("meta=%v: %v allocations per push of %d lines", meta, n, len(idx))
		}
	}
}
