package loki

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
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
// batcher: stream lookup, copy into the batch buffer, sealing full batches.
// No senders run; sealed batches are taken off the queue and recycled, as
// the senders would.
func BenchmarkAppenderAdd(b *testing.B) {
	cfg := testConfig(sink(b).URL)
	cfg.Batch.MaxBytes = 1 << 20
	c, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	a := c.NewAppender()
	lines := benchLines()
	hosts := [][]byte{[]byte("web-1"), []byte("web-2")}
	ack := &countAck{}
	l := Line{Time: time.Unix(1700000000, 0), VHost: []byte("www.example.com")}
	b.ReportAllocs()
	b.SetBytes(int64(len(lines[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i += 1000 {
		a.Begin("nginxlog", 0, ack)
		for j := i; j < i+1000 && j < b.N; j++ {
			l.Line = lines[j&255]
			l.Host = hosts[(j>>10)&1]
			l.Offset = int64(j)
			a.Add(&l)
		}
		a.End()
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
		a.Begin("nginxlog", 0, ack)
		for j := i; j < i+1000 && j < b.N; j++ {
			l.Line = lines[j&255]
			l.Offset = int64(j)
			a.Add(&l)
		}
		a.End()
		if i%200000 == 0 {
			_ = c.Wait(context.Background())
		}
	}
	_ = c.Wait(context.Background())
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
}
