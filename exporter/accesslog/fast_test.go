package accesslog

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
)

// opLoopOnly is f with its straight-line readers switched off: every line
// goes through the op loop, the reference the fast paths must agree with.
func opLoopOnly(f *Format) *Format {
	slow := *f
	slow.text.combined, slow.text.timed, slow.text.main = false, false, false
	return &slow
}

// sameAsOpLoop parses line with f and with the op loop alone and reports
// any difference: the interpreted fields, the error, and every raw value
// (bytes, nil or not, and where it starts in the line).
func sameAsOpLoop(t testing.TB, f *Format, line []byte) {
	t.Helper()
	var fast, slow Record
	errFast := f.Parse(line, &fast)
	errSlow := opLoopOnly(f).Parse(line, &slow)
	var diffs []string
	if a, b := errSummary(errFast), errSummary(errSlow); a != b {
		diffs = append(diffs, fmt.Sprintf("error %q, op loop %q", a, b))
	}
	if a, b := summary(&fast), summary(&slow); a != b {
		diffs = append(diffs, fmt.Sprintf("record\n  %s\nop loop\n  %s", a, b))
	}
	for i := range f.vars {
		a, b := fast.Var(i), slow.Var(i)
		if !bytes.Equal(a, b) || (a == nil) != (b == nil) || a != nil && fast.offset(i) != slow.offset(i) {
			diffs = append(diffs, fmt.Sprintf("$%s %q, op loop %q", f.vars[i], a, b))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s line %q:", f.name, line)
		for _, d := range diffs {
			t.Errorf("  %s", d)
		}
	}
}

// fastFormats are the formats whose lines take a straight-line reader.
func fastFormats(tb testing.TB) []*Format {
	return []*Format{
		mustCompile(tb, "combined", "combined", EscapeDefault),
		mustCompile(tb, "main", "main", EscapeDefault),
		mustCompile(tb, "main_timed", "main_timed", EscapeDefault),
		// combined with more after it, read by the op loop.
		mustCompile(tb, "combined+", FormatCombined+` "$http_x_forwarded_for" $host [$request_time]`, EscapeDefault),
		// A variable of combined's logged again after it: no fast path.
		mustCompile(tb, "combined+again", FormatCombined+` $status [$request_time] $remote_user`, EscapeDefault),
	}
}

func TestFastPathsTaken(t *testing.T) {
	for _, c := range []struct {
		format                string
		escape                Escape
		combined, timed, main bool
	}{
		{"combined", EscapeDefault, true, false, false},
		{"main", EscapeDefault, true, false, true},
		{"main_timed", EscapeDefault, true, true, false},
		{"main_timed", EscapeJSON, false, false, false},
		{"main_timed", EscapeNone, false, false, false},
		{"main", EscapeNone, false, false, false},
		{FormatMainTimed + " $pipe", EscapeDefault, true, false, false},
		{FormatMainTimed + ";", EscapeDefault, true, false, false},
		{strings.Replace(FormatMainTimed, "$upstream_status", "$upstream_status_x", 1), EscapeDefault, true, false, false},
		{FormatMain + " ", EscapeDefault, true, false, false},
		{FormatCombined + " $status", EscapeDefault, false, false, false},
		{FormatCombined + ` "$http_x_real_ip"`, EscapeDefault, true, false, false},
		{FormatCombined + ` "$http_x_forwarded_for`, EscapeDefault, true, false, false},
		{`$remote_addr $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`, EscapeDefault, false, false, false},
		{`$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"`, EscapeDefault, false, false, false},
		{`$remote_user - $remote_addr [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`, EscapeDefault, false, false, false},
	} {
		f := mustCompile(t, "f", c.format, c.escape)
		if f.text.combined != c.combined || f.text.timed != c.timed || f.text.main != c.main {
			t.Errorf("%q escape=%s: combined, timed, main readers %v, %v, %v; want %v, %v, %v", c.format, c.escape,
				f.text.combined, f.text.timed, f.text.main, c.combined, c.timed, c.main)
		}
	}
}

// fastSeeds are lines around every branch of the straight-line readers.
var fastSeeds = []string{
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-"`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-"`,
	// Values of 7, 8 and 9 bytes before a space: both sides of a word.
	`1.2.3.4 - 1234567 [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1234567 "-" "-" "-"`,
	`1.2.3.45 - 12345678 [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 12345678 "-" "-" "-"`,
	`1.2.3.456 - 123456789 [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 123456789 "-" "-" "-"`,
	`2001:db8:0:0:0:0:0:1234 - user [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "" "" ""`,
	// A space in a value before the literal: the op loop searches on.
	`1.2.3.4 x - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-"`,
	`1.2.3.4 - a b [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-"`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36  +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-"`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 20 0 1 "-" "-" "-"`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 2 "-" "-" "-"`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-"x "-" "-"`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1"  200 1 "-" "-" "-"`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-"  "-" "-"`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET /\x22 HTTP/1.1" 200 1 "-\x22" "a\x22b" "-"`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.1 - - - - - id`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.1 - - - - - `,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.1 - - - - -`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.1 1.000, - 0.1 : 0.2 - 502, 200 : 404 a:1, b:2 : c:3 id`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.1  - - - - id`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.1 -, - - - - id`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.1 - : - - - - id`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.1 - - - - 10.0.0.1:80, 10.0.0.2:80 id with spaces`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.1 - - - - 12345678,`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" h 0.1 - - - - x :`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-" host.example.com 0.1 - - - - 1234567 :`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "-"x`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "1.2.3.4, 5.6.7.8" "x"`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" ""`,
	`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-" "`,
	`1 - - [`,
	`1 -`,
	`1234567`,
	` - [`,
	benchCombined,
	benchMainTimed,
}

// loggenLines is n lines of format f from loggen, some malformed.
func loggenLines(tb testing.TB, f loggen.Format, n int) [][]byte {
	g, err := loggen.New(loggen.WithFormat(f), loggen.MalformedRatio(0.05))
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = g.Next(nil)
	}
	return out
}

// TestFastPathsAgreeWithOpLoop compares the fast paths with the op loop on
// loggen's lines and seeds, cut at every length and with every byte
// replaced by each delimiter byte.
func TestFastPathsAgreeWithOpLoop(t *testing.T) {
	lines := [][]byte{}
	for _, s := range fastSeeds {
		lines = append(lines, []byte(s))
	}
	for _, lf := range []loggen.Format{loggen.Combined, loggen.Main, loggen.MainTimed} {
		lines = append(lines, loggenLines(t, lf, 4)...)
	}
	for _, f := range fastFormats(t) {
		for _, line := range lines {
			for n := 0; n <= len(line); n++ {
				sameAsOpLoop(t, f, line[:n])
			}
			for i := range line {
				for _, c := range []byte(` "-[],:.\x0009`) {
					m := bytes.Clone(line)
					m[i] = c
					sameAsOpLoop(t, f, m)
				}
				sameAsOpLoop(t, f, append(bytes.Clone(line[:i]), line[i+1:]...))
			}
			if t.Failed() {
				return
			}
		}
	}
}

func FuzzFastPaths(f *testing.F) {
	for _, s := range append(fastSeeds, lineSeeds...) {
		f.Add(s)
	}
	formats := fastFormats(f)
	f.Fuzz(func(t *testing.T, line string) {
		for _, fm := range formats {
			sameAsOpLoop(t, fm, []byte(line))
		}
	})
}

// TestShortReaders checks the readers of the common shapes against the
// general ones, for every string of their length over the bytes that
// matter.
func TestShortReaders(t *testing.T) {
	const alphabet = "0189.-x :,"
	var each func(prefix []byte, n int, f func([]byte))
	each = func(prefix []byte, n int, f func([]byte)) {
		if n == 0 {
			f(prefix)
			return
		}
		for _, c := range []byte(alphabet) {
			each(append(prefix, c), n-1, f)
		}
	}
	each(nil, 5, func(b []byte) {
		ns, ok := shortNanos(b)
		want, wantOK := parseNanos(b)
		if ok && (!wantOK || ns != want) {
			t.Errorf("shortNanos(%q) = %d, parseNanos %d, %v", b, ns, want, wantOK)
		}
		if !ok && wantOK && len(b) == 5 && b[1] == '.' && want < 10e9 {
			t.Errorf("shortNanos(%q) not ok, parseNanos %d", b, want)
		}
	})
	for n := 0; n <= 4; n++ {
		each(nil, n, func(b []byte) {
			st, ok := parseStatus(b)
			want, err := strconv.Atoi(string(b))
			wantOK := err == nil && len(b) == 3 && strings.Trim(string(b), "0123456789") == ""
			if ok != wantOK || ok && st != want {
				t.Errorf("parseStatus(%q) = %d, %v; want %d, %v", b, st, ok, want, wantOK)
			}
		})
	}
	for _, m := range []string{"GET ", "GET", "GETX ", "GET/", "get ", "GE T", "POST ", "M-SEARCH "} {
		n := 0
		for n < len(m) && n <= maxMethod && methodByte(m[n]) {
			n++
		}
		if n > maxMethod || m[0] < 'A' || m[0] > 'Z' {
			n = 0
		}
		if got := methodLen([]byte(m)); got != n {
			t.Errorf("methodLen(%q) = %d, want %d", m, got, n)
		}
	}
}

// TestSpansEndWithTheirLine reuses one Record across a line read by the
// fast paths and lines that are not (JSON, a failed line, a failed
// decode, a JSON envelope): its values must be the new line's, as in a
// fresh Record.
func TestSpansEndWithTheirLine(t *testing.T) {
	timed := mustCompile(t, "main_timed", "main_timed", EscapeDefault)
	jsonFmt := mustCompile(t, "json", "json", EscapeJSON)
	dec, err := NewDecoder(DecoderConfig{Default: timed})
	if err != nil {
		t.Fatal(err)
	}
	fast := []byte(benchMainTimed)
	steps := []struct {
		name string
		run  func(r *Record) error
	}{
		{"json line", func(r *Record) error { return jsonFmt.Parse([]byte(benchJSON), r) }},
		{"failed line", func(r *Record) error {
			return timed.Parse([]byte(`1.2.3.4 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 2x0`), r)
		}},
		{"failed decode", func(r *Record) error { return dec.Decode([]byte(`{"message":`), r) }},
		{"envelope", func(r *Record) error { return dec.Decode([]byte(envFB8), r) }},
		{"empty", func(r *Record) error { return timed.Parse(nil, r) }},
	}
	for _, s := range steps {
		var r, fresh Record
		if err := timed.Parse(fast, &r); err != nil {
			t.Fatal(err)
		}
		errReused, errFresh := s.run(&r), s.run(&fresh)
		if a, b := errSummary(errReused), errSummary(errFresh); a != b {
			t.Errorf("%s: error %q, in a fresh Record %q", s.name, a, b)
		}
		if a, b := summary(&r), summary(&fresh); a != b {
			t.Errorf("%s: record %s, in a fresh Record %s", s.name, a, b)
		}
		for i := range 20 {
			if a, b := r.Var(i), fresh.Var(i); !bytes.Equal(a, b) || (a == nil) != (b == nil) {
				t.Errorf("%s: Var(%d) %q, in a fresh Record %q", s.name, i, a, b)
			}
		}
	}
}

// TestPlainHost checks the word-at-a-time host test against the table,
// for every byte at every position of hosts of 1 to 20 bytes.
func TestPlainHost(t *testing.T) {
	for n := 1; n <= 20; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte("a"), n)
				b[pos] = byte(c)
				want := !hostSpecial[c]
				if got := plainHost(b); got != want {
					t.Fatalf("plainHost(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}

// TestTimeOfDayWord checks the cached $time_local read, whose time of day
// is one word, against parseTimeLocal with every byte of " hh:mm:ss " set
// to every value, and at every time of day.
func TestTimeOfDayWord(t *testing.T) {
	var r Record
	base := []byte("10/Oct/2025:13:55:36 +0200")
	if _, ok := r.parseTime(base); !ok {
		t.Fatal("base time not read")
	}
	check := func(b []byte) {
		got, ok := r.parseTime(b)
		want, wantOK := parseTimeLocal(b)
		if ok != wantOK || ok && !got.Equal(want) {
			t.Fatalf("parseTime(%q) = %v, %v; parseTimeLocal %v, %v", b, got, ok, want, wantOK)
		}
	}
	for i := 11; i <= 20; i++ {
		for c := 0; c < 256; c++ {
			b := bytes.Clone(base)
			b[i] = byte(c)
			check(b)
		}
	}
	for sec := 0; sec < 100*100*100; sec += 7 {
		b := bytes.Clone(base)
		copy(b[12:], fmt.Sprintf("%02d:%02d:%02d", sec/10000, sec/100%100, sec%100))
		check(b)
	}
}
