package accesslog

import (
	"errors"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
)

const (
	benchCombined  = `203.0.113.7 - - [10/Oct/2025:13:55:36 +0200] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"`
	benchMainTimed = `10.1.2.3 - - [10/Oct/2025:13:55:36 +0200] "GET /api/v1/orders?page=2 HTTP/1.1" 200 1532 "https://shop.example.com/cart" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0 Safari/537.36" "203.0.113.9" api.example.com 0.070 0.010, 0.020 : 0.030 0.001, 0.002 : 0.003 0.005, - : 0.010 502, 504 : 200 10.0.0.1:8080, 10.0.0.2:8080 : 10.0.1.1:80 6b1f0e5d4c3b2a19f8e7d6c5b4a39281`
	benchJSON      = `{"time":"2025-10-10T13:55:36+02:00","remote_addr":"10.0.0.1","remote_user":"","request":"GET /api/v1/orders?page=2 HTTP/1.1","status":"200","body_bytes_sent":"512","bytes_sent":"800","request_time":"0.012","http_referer":"https://shop.example.com/cart","http_user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0 Safari/537.36","http_x_forwarded_for":"","host":"api.example.com","upstream_addr":"10.0.0.5:8080","upstream_status":"200","upstream_response_time":"0.010","upstream_connect_time":"0.001","upstream_header_time":"0.009","request_id":"6b1f0e5d4c3b2a19f8e7d6c5b4a39281","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`
)

// hotPaths are the per-line calls the pipeline makes; each must allocate
// nothing once its Record and Decoder are warm.
func hotPaths(tb testing.TB) []struct {
	name string
	run  func(*Record) error
} {
	combined := mustCompile(tb, "combined", "combined", EscapeDefault)
	mainTimed := mustCompile(tb, "main_timed", "main_timed", EscapeDefault)
	jsonFmt := mustCompile(tb, "json", "json", EscapeJSON)
	dMT, err := NewDecoder(DecoderConfig{Default: mainTimed})
	if err != nil {
		tb.Fatal(err)
	}
	dJSON, err := NewDecoder(DecoderConfig{Default: jsonFmt})
	if err != nil {
		tb.Fatal(err)
	}
	combinedLine := []byte(benchCombined)
	mtLine := []byte(benchMainTimed)
	envelope := []byte(envFB8)
	jsonLine := []byte(benchJSON)
	escaped := []byte(`10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET /a\x22b HTTP/1.1" 200 1 "-" "-" "-" Host.Example:80 0.001 - - - - - -`)
	mainFmt := mustCompile(tb, "main", "main", EscapeDefault)
	envelopes := loggenRecords(tb, loggen.MainTimed, true)
	lines := loggenRecords(tb, loggen.MainTimed, false)
	mainLines := loggenRecords(tb, loggen.Main, false)
	nEnv, nLine, nMain, nAt := 0, 0, 0, 0
	// Where each envelope's message is, as the log member has it from the
	// metrics member's decode, and a buffer for the lines with escapes.
	msgAt := make([]int, len(envelopes))
	for i, e := range envelopes {
		var r Record
		_ = dMT.Decode(e, &r)
		msgAt[i] = r.MessageAt
	}
	lineBuf := make([]byte, 0, 64<<10)
	bad := []byte(`10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 2x0 1 "-" "-"`)
	return []struct {
		name string
		run  func(*Record) error
	}{
		{"ParseCombined", func(r *Record) error { return combined.Parse(combinedLine, r) }},
		{"ParseMainTimed", func(r *Record) error { return mainTimed.Parse(mtLine, r) }},
		{"DecodeRawMainTimed", func(r *Record) error { return dMT.Decode(mtLine, r) }},
		{"DecodeFilebeat", func(r *Record) error { return dMT.Decode(envelope, r) }},
		// What production carries: loggen's Filebeat 8 envelopes (as
		// `loggen --envelope` writes them) and their main_timed lines, a
		// different one each call.
		{"DecodeLoggenFilebeat", func(r *Record) error {
			nEnv = (nEnv + 1) % len(envelopes)
			return dMT.Decode(envelopes[nEnv], r)
		}},
		// What the log member does per line: the line again from the
		// envelope and the message position the metrics member found.
		{"EnvelopeLoggenLine", func(r *Record) error {
			nAt = (nAt + 1) % len(envelopes)
			line, ok := EnvelopeLine(envelopes[nAt], msgAt[nAt], lineBuf)
			if !ok {
				return errors.New("no line")
			}
			r.Line = line
			return nil
		}},
		{"ParseLoggenMainTimed", func(r *Record) error {
			nLine = (nLine + 1) % len(lines)
			return mainTimed.Parse(lines[nLine], r)
		}},
		// What replay reads most: plain main lines.
		{"ParseLoggenMain", func(r *Record) error {
			nMain = (nMain + 1) % len(mainLines)
			return mainFmt.Parse(mainLines[nMain], r)
		}},
		{"ParseJSON", func(r *Record) error { return jsonFmt.Parse(jsonLine, r) }},
		{"DecodeJSON", func(r *Record) error { return dJSON.Decode(jsonLine, r) }},
		{"ParseEscapedPathAndHost", func(r *Record) error { return mainTimed.Parse(escaped, r) }},
		{"ParseError", func(r *Record) error {
			if err := combined.Parse(bad, r); err == nil {
				panic("bad line parsed")
			}
			return nil
		}},
	}
}

func TestZeroAllocs(t *testing.T) {
	for _, hp := range hotPaths(t) {
		t.Run(hp.name, func(t *testing.T) {
			var r Record
			if err := hp.run(&r); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(200, func() {
				if err := hp.run(&r); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per line, want 0", allocs)
			}
		})
	}
}

func benchLines(b *testing.B, name string) {
	for _, hp := range hotPaths(b) {
		if hp.name != name {
			continue
		}
		var r Record
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			if err := hp.run(&r); err != nil {
				b.Fatal(err)
			}
		}
		// CPU time is what the issue budgets, and it stays meaningful on a
		// machine shared with other work, where ns/op (wall time) does not.
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		return
	}
	b.Fatalf("no hot path %s", name)
}

func BenchmarkParseCombined(b *testing.B)        { benchLines(b, "ParseCombined") }
func BenchmarkParseMainTimed(b *testing.B)       { benchLines(b, "ParseMainTimed") }
func BenchmarkDecodeFilebeat(b *testing.B)       { benchLines(b, "DecodeFilebeat") }
func BenchmarkDecodeLoggenFilebeat(b *testing.B) { benchLines(b, "DecodeLoggenFilebeat") }
func BenchmarkEnvelopeLoggenLine(b *testing.B)   { benchLines(b, "EnvelopeLoggenLine") }
func BenchmarkParseLoggenMainTimed(b *testing.B) { benchLines(b, "ParseLoggenMainTimed") }
func BenchmarkParseLoggenMain(b *testing.B)      { benchLines(b, "ParseLoggenMain") }
func BenchmarkParseJSON(b *testing.B)            { benchLines(b, "ParseJSON") }
func BenchmarkDecodeJSON(b *testing.B)           { benchLines(b, "DecodeJSON") }

// loggenBatch is how many distinct records the loggen benchmarks cycle
// through: a multiple of it as -benchtime gives a count of instructions per
// line that does not depend on where the cycle stops.
const loggenBatch = 1000

// loggenRecords is loggenBatch lines of format f from loggen's default
// traffic (seed 1, simulated clock), each in a Filebeat 8 envelope when
// envelope is set.
func loggenRecords(tb testing.TB, f loggen.Format, envelope bool) [][]byte {
	g, err := loggen.New(loggen.WithFormat(f), loggen.Envelope(envelope))
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, loggenBatch)
	for i := range out {
		out[i] = g.Next(nil)
	}
	return out
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecodeLoggenFilebeatHosts is DecodeLoggenFilebeat with lines
// from 64 machines instead of 2: each has its own agent object, more than
// the Decoder remembers of skipped values, so it shows what the envelope
// costs when that memory misses.
func BenchmarkDecodeLoggenFilebeatHosts(b *testing.B) {
	hosts := make([]string, 64)
	for i := range hosts {
		hosts[i] = "web-" + strconv.Itoa(i+1)
	}
	g, err := loggen.New(loggen.WithFormat(loggen.MainTimed), loggen.Envelope(true), loggen.Hosts(hosts...))
	if err != nil {
		b.Fatal(err)
	}
	values := make([][]byte, loggenBatch)
	for i := range values {
		values[i] = g.Next(nil)
	}
	d, err := NewDecoder(DecoderConfig{Default: mustCompile(b, "main_timed", "main_timed", EscapeDefault)})
	if err != nil {
		b.Fatal(err)
	}
	benchDecodeValues(b, d, values)
}

// benchDecodeValues decodes values in turn, b.N in all; callgrind counts
// it by this name as it counts benchLines.
func benchDecodeValues(b *testing.B, d *Decoder, values [][]byte) {
	var r Record
	b.ReportAllocs()
	cpu := cpuTime()
	n := 0
	for b.Loop() {
		n = (n + 1) % len(values)
		if err := d.Decode(values[n], &r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}
