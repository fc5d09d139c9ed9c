package loki

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// A line over loki.max_line_bytes is cut to it (at a UTF-8 boundary),
// counted, and pushed; the lines around it are untouched.
func TestOverlongLineIsTruncatedAndCounted(t *testing.T) {
	store := newStore(t)
	cfg := testConfig(store.URL())
	cfg.MaxLineBytes = 1000
	c, reg := newClient(t, cfg)
	long := append(bytes.Repeat([]byte("a"), 999), "é and more"...) // é is 2 bytes at 999-1000
	a := c.NewAppender()
	ack := &countAck{}
	a.Append("nginxlog", 0, ack, func() {
		for i, l := range [][]byte{[]byte("before"), long, []byte("after")} {
			a.Add(&Line{Time: time.Unix(1700000000, 0), Line: l, Offset: int64(i)})
		}
	})
	if err := c.wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range store.Entries() {
		lines = append(lines, e.Line)
	}
	want := []string{"before", strings.Repeat("a", 999), "after"}
	if strings.Join(lines, "|") != strings.Join(want, "|") || !utf8.ValidString(lines[1]) {
		t.Errorf("stored %d lines of lengths %v, want lengths 6, 999, 5", len(lines), lengths(lines))
	}
	if v := counterValue(t, reg, "accesslog_exporter_loki_truncated_total", "reason", "max_line_bytes"); v != 1 {
		t.Errorf("truncated_total{reason=max_line_bytes} = %v, want 1", v)
	}
	if ack.held() || c.InflightBytes() != 0 {
		t.Errorf("source held %v, %d bytes in flight after the push", ack.held(), c.InflightBytes())
	}
}

func lengths(ss []string) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s))
	}
	return out
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abcdef", 3, "abc"},
		{"ab€cd", 3, "ab"},  // € is 3 bytes at 2-4: cut before it
		{"ab€cd", 5, "ab€"}, // the cut falls after it
		{"\x80\x80\x80\x80\x80", 2, "\x80\x80"},
	} {
		if got := string(truncate([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// Issue 13 defect 11: a 32 MiB line cost the push path several copies of
// itself (the batch copy, the protobuf body, the snappy body). With the cap
// it costs max_line_bytes each.
func TestOverlongLineMemoryIsBoundedByTheCap(t *testing.T) {
	store := newStore(t)
	cfg := testConfig(store.URL())
	cfg.MaxLineBytes = config.Default().Loki.MaxLineBytes
	cfg.Batch.MaxBytes = 1 << 20
	c, _ := newClient(t, cfg)
	huge := bytes.Repeat([]byte("x"), 32<<20)
	a := c.NewAppender()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	a.Append("nginxlog", 0, &countAck{}, func() {
		a.Add(&Line{Time: time.Unix(1700000000, 0), Line: huge})
	})
	if err := c.wait(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// What the client and the in-process store allocated for the line: a
	// few copies of 256 KB, far below one copy of the line.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("pushing one 32 MiB line allocated %d MiB; the cap should bound it to a few times %v", alloc>>20, cfg.MaxLineBytes)
	}
	if es := store.Entries(); len(es) != 1 || len(es[0].Line) != int(cfg.MaxLineBytes) {
		t.Errorf("stored %d entries; want one of %d bytes", len(es), cfg.MaxLineBytes)
	}
}
