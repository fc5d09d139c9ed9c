package loki

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/s2"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
)

func benchLines() [][]byte {
	lines := make([][]byte, 256)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `192.0.2.%d - - [24/Nov/2026:10:00:00 +0000] "GET /api/v1/items/%d HTTP/1.1" 200 %d "-" "Mozilla/5.0 (X11; Linux x86_64)" 0.012 0.011 www.example.com`, i, i*7, 500+i)
	}
	return lines
}

func sink(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkAppenderAdd is the per-line cost of handing a line to the
// batcher: stream lookup, writing its Entry field into the batch buffer,
// sealing full batches. No senders run; sealed batches are taken off the
// queue and recycled, as the senders would.
func BenchmarkAppenderAdd(b *testing.B) { benchAppenderAdd(b, false) }

// BenchmarkAppenderAddMetadata is the same with structured metadata and a
// trace id on every line.
func BenchmarkAppenderAddMetadata(b *testing.B) { benchAppenderAdd(b, true) }

func benchAppenderAdd(b *testing.B, meta bool) {
	cfg := testConfig(sink(b).URL)
	cfg.Batch.MaxBytes = 1 << 20
	cfg.StructuredMetadata = meta
	c, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	a := c.NewAppender()
	lines := benchLines()
	hosts := [][]byte{[]byte("web-1"), []byte("web-2")}
	ack := &countAck{}
	l := Line{Time: time.Unix(1700000000, 0), VHost: []byte("www.example.com")}
	if meta {
		l.TraceID = []byte("4bf92f3577b34da6a3ce929d0e0e4736")
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(lines[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i += 1000 {
		a.Append("nginxlog", 0, ack, func() {
			for j := i; j < i+1000 && j < b.N; j++ {
				l.Line = lines[j&255]
				l.Host = hosts[(j>>10)&1]
				l.Offset = int64(j)
				a.Add(&l)
			}
		})
		for q := c.dequeue(); q != nil; q = c.dequeue() {
			q.release()
			c.recycle(q)
		}
	}
}

// BenchmarkPushThroughput is lines/s through Add, encoding, snappy and HTTP
// to a sink answering 204 at once; it waits for acknowledgements every
// 200k lines, which bounds memory as the in-flight bound would.
func BenchmarkPushThroughput(b *testing.B) {
	cfg := testConfig(sink(b).URL)
	cfg.Batch.MaxBytes = 1 << 20
	c, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	c.Start()
	defer c.Close()
	a := c.NewAppender()
	lines := benchLines()
	ack := &countAck{}
	l := Line{Time: time.Unix(1700000000, 0), Host: []byte("web-1"), VHost: []byte("www.example.com")}
	b.ReportAllocs()
	b.SetBytes(int64(len(lines[0])))
	start := time.Now()
	for i := 0; i < b.N; i += 1000 {
		a.Append("nginxlog", 0, ack, func() {
			for j := i; j < i+1000 && j < b.N; j++ {
				l.Line = lines[j&255]
				l.Offset = int64(j)
				a.Add(&l)
			}
		})
		if i%200000 == 0 {
			_ = c.wait(context.Background())
		}
	}
	_ = c.wait(context.Background())
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
}

// unsentClient is a client whose pushes go nowhere, for tests that take
// its batches off the queue themselves.
func unsentClient(t testing.TB, maxBytes config.ByteSize, meta bool) *Client {
	cfg := testConfig("http://127.0.0.1:1")
	cfg.Batch.MaxBytes = maxBytes
	cfg.StructuredMetadata = meta
	c, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// benchBatch is a sealed batch of n lines over two streams, as Add builds it.
func benchBatch(b testing.TB, meta bool, n int) (*Client, *batch) {
	c := unsentClient(b, 64<<20, meta)
	a := c.NewAppender()
	// Distinct realistic lines: snappy's cost depends on what it finds.
	g, err := loggen.New(loggen.Seed(7), loggen.WithFormat(loggen.MainTimed))
	if err != nil {
		b.Fatal(err)
	}
	hosts := [][]byte{[]byte("web-1"), []byte("web-2")}
	l := Line{VHost: []byte("www.example.com"), TraceID: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}
	a.Append("nginxlog", 3, &countAck{}, func() {
		for j := range n {
			l.Time = time.Unix(1700000000+int64(j/100), int64(j%7)*1e6)
			l.Line = g.Next(nil)
			l.Host = hosts[(j>>4)&1]
			l.Offset = int64(1e6 + j)
			a.Add(&l)
		}
	})
	c.Flush()
	return c, c.dequeue()
}

// processCPU is the CPU time of the process so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkEncode is the per-line cost of building a push body: protobuf
// and snappy, for a batch of 4096 loggen main_timed lines (about 1 MB).
func BenchmarkEncode(b *testing.B) {
	for _, meta := range []bool{false, true} {
		name := "plain"
		if meta {
			name = "metadata"
		}
		b.Run(name, func(b *testing.B) {
			c, bt := benchBatch(b, meta, 4096)
			s := &sender{c: c}
			s.deliverIdx(bt)
			var in int
			for i := range bt.entries {
				in += int(bt.entries[i].n)
			}
			b.ReportAllocs()
			b.SetBytes(int64(in))
			b.ResetTimer()
			cpu0 := processCPU()
			for range b.N {
				s.encode(bt, s.idxBuf)
			}
			// CPU time, not wall time: on a shared machine the wall clock
			// measures the neighbours too.
			lines := float64(b.N) * float64(len(bt.entries))
			b.ReportMetric(float64(processCPU()-cpu0)/lines, "cpu-ns/line")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/lines, "ns/line")
			b.ReportMetric(float64(len(s.body))/float64(in), "ratio")
		})
	}
}

// BenchmarkCompress compares the two snappy block encoders on the same
// push body (4096 loggen lines): golang/snappy, which the client used
// before, and s2's snappy-compatible encoder, which it uses now.
func BenchmarkCompress(b *testing.B) {
	c, bt := benchBatch(b, false, 4096)
	s := &sender{c: c}
	s.encode(bt, s.deliverIdx(bt))
	raw := append([]byte(nil), s.raw...)
	dst := make([]byte, max(snappy.MaxEncodedLen(len(raw)), s2.MaxEncodedLen(len(raw))))
	for _, enc := range []struct {
		name string
		fn   func(dst, src []byte) []byte
	}{{"golang-snappy", snappy.Encode}, {"s2-snappy", s2.EncodeSnappy}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			var out []byte
			cpu0 := processCPU()
			for range b.N {
				out = enc.fn(dst, raw)
			}
			lines := float64(b.N) * float64(len(bt.entries))
			b.ReportMetric(float64(processCPU()-cpu0)/lines, "cpu-ns/line")
			b.ReportMetric(float64(len(out))/float64(len(raw)), "ratio")
		})
	}
}

// BenchmarkDecompressEnvelopes is the other codec on the production path:
// franz-go's s2 decode of the record batches a fetch brings, here loggen's
// Filebeat envelopes snappy-compressed 64 KiB at a time as a producer
// batches them. With BenchmarkCompress it is the part of a line's CPU no
// change of ours can take away (docs/performance.md, issue 18).
func BenchmarkDecompressEnvelopes(b *testing.B) {
	g, err := loggen.New(loggen.Seed(7), loggen.WithFormat(loggen.MainTimed), loggen.Envelope(true))
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64 << 10
	var blocks [][]byte
	raw, lines, in := make([]byte, 0, batch), 0, 0
	for len(blocks) < 32 {
		e := g.Next(nil)
		if len(raw)+len(e) > batch {
			blocks = append(blocks, s2.EncodeSnappy(nil, raw))
			raw, lines, in = raw[:0], lines+in, 0
		}
		raw = append(raw, e...)
		in++
	}
	dst := make([]byte, batch)
	b.ReportAllocs()
	cpu0 := processCPU()
	for range b.N {
		for _, c := range blocks {
			if _, err := s2.Decode(dst, c); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/float64(lines), "cpu-ns/line")
}
