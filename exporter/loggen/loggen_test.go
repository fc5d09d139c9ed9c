package loggen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var allFormats = []Format{Combined, Main, MainTimed, JSON}

func newGen(t testing.TB, opts ...Option) *Generator {
	t.Helper()
	g, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		want string
	}{
		{"format", []Option{WithFormat(Format(9))}, "unknown format"},
		{"ratio above 1", []Option{MalformedRatio(1.5)}, "malformed ratio"},
		{"ratio NaN", []Option{MalformedRatio(nan())}, "malformed ratio"},
		{"no hosts", []Option{Hosts()}, "no host names"},
		{"empty host", []Option{Hosts("web-1", "")}, "empty host name"},
		{"clock rate", []Option{SimulatedClock(time.Now(), 0)}, "not positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestParseFormat(t *testing.T) {
	for _, f := range allFormats {
		got, err := ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), got, err)
		}
		if f.LogFormat() == "" {
			t.Errorf("%v has no log_format", f)
		}
	}
	if _, err := ParseFormat("apache"); err == nil {
		t.Error("ParseFormat(apache): no error")
	}
	// The exporter's default format; the parser's preset must be this string.
	const want = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" $host $request_time $upstream_response_time $upstream_connect_time $upstream_header_time $upstream_status $upstream_addr $request_id`
	if LogFormatMainTimed != want {
		t.Errorf("LogFormatMainTimed = %q", LogFormatMainTimed)
	}
}

func TestDeterministic(t *testing.T) {
	for _, f := range allFormats {
		for _, env := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/envelope=%v", f, env), func(t *testing.T) {
				run := func(seed int64) []byte {
					g := newGen(t, WithFormat(f), Envelope(env), Seed(seed), MalformedRatio(0.02), Hosts("a", "b", "c"))
					var out []byte
					for range 5000 {
						out = append(g.Next(out), '\n')
					}
					return out
				}
				a, b := run(42), run(42)
				if !bytes.Equal(a, b) {
					t.Fatal("same seed, different output")
				}
				if bytes.Equal(a, run(43)) {
					t.Fatal("different seeds, same output")
				}
			})
		}
	}
}

func TestClockInjected(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.FixedZone("", 3600))
	g := newGen(t, Clock(func() time.Time { return now }), Envelope(true))
	line := g.Next(nil)
	for _, want := range []string{"[02/Jan/2026:03:04:05 +0100]", `"@timestamp":"2026-01-02T02:04:05.`} {
		if !bytes.Contains(line, []byte(want)) {
			t.Errorf("line lacks %s:\n%s", want, line)
		}
	}
	g = newGen(t, WithFormat(JSON), Clock(func() time.Time { return now }))
	if line := g.Next(nil); !bytes.Contains(line, []byte(`"time":"2026-01-02T03:04:05+01:00"`)) {
		t.Errorf("json line lacks the time:\n%s", line)
	}
}

func TestSimulatedClockAdvances(t *testing.T) {
	g := newGen(t, SimulatedClock(time.Date(2025, 10, 10, 23, 59, 59, 0, time.UTC), 100))
	var line []byte
	for range 101 {
		line = g.Next(line[:0])
	}
	if !bytes.Contains(line, []byte("[11/Oct/2025:00:00:00 +0000]")) {
		t.Errorf("line 101 at 100 lines/s should be a second later:\n%s", line)
	}
}

// splitText splits a text line into fields the way a reader of the format
// would, independently of the generator: "quoted" and [bracketed] fields,
// bare words; upstream lists ("a, b", "a : b") rejoined into one field. It
// fails on a quote that does not end a field, on a bad escape, and on any
// byte nginx would have escaped.
func splitText(line string) ([]string, error) {
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c < 0x20 || c >= 0x7f {
			return nil, fmt.Errorf("raw byte %#x at %d", c, i)
		}
		if c == '\\' {
			if i+3 >= len(line) || line[i+1] != 'x' || !isUpperHex(line[i+2]) || !isUpperHex(line[i+3]) {
				return nil, fmt.Errorf("bad escape at %d", i)
			}
		}
	}
	var raw []string
	for s := line; s != ""; {
		var f string
		switch s[0] {
		case '"':
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			f, s = s[:end+2], s[end+2:]
		case '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated bracket in %q", s)
			}
			f, s = s[:end+1], s[end+1:]
		default:
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			f, s = s[:end], s[end:]
		}
		raw = append(raw, f)
		if s == "" {
			break
		}
		if s[0] != ' ' {
			return nil, fmt.Errorf("field %q not followed by a space", f)
		}
		s = s[1:]
	}
	var fields []string
	for i := 0; i < len(raw); i++ {
		f := raw[i]
		for i+1 < len(raw) && (strings.HasSuffix(f, ",") || raw[i+1] == ":") {
			if raw[i+1] == ":" {
				if i+2 >= len(raw) {
					return nil, fmt.Errorf("dangling group separator")
				}
				f += " : " + raw[i+2]
				i += 2
			} else {
				f += " " + raw[i+1]
				i++
			}
		}
		fields = append(fields, f)
	}
	return fields, nil
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// sumMillis adds up an nginx time list: "0.001, 0.250 : 0.010", "-".
func sumMillis(t *testing.T, v string) int64 {
	var sum int64
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ':' || r == ' ' }) {
		if part == "-" {
			continue
		}
		sec, ms, ok := strings.Cut(part, ".")
		if !ok || len(ms) != 3 {
			t.Fatalf("time %q is not nginx's 3-decimal seconds", part)
		}
		s, err1 := strconv.ParseInt(sec, 10, 64)
		m, err2 := strconv.ParseInt(ms, 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("time %q does not parse", part)
		}
		sum += s*1000 + m
	}
	return sum
}

func TestTextLines(t *testing.T) {
	want := map[Format]int{Combined: 9, Main: 10, MainTimed: 18}
	for _, f := range []Format{Combined, Main, MainTimed} {
		t.Run(f.String(), func(t *testing.T) {
			g := newGen(t, WithFormat(f), Seed(7))
			var (
				line                 []byte
				status               = map[int]int64{}
				body, reqMs, upMs    int64
				sawQuote, sawNonASCI bool
			)
			for range 50000 {
				line = g.Next(line[:0])
				fields, err := splitText(string(line))
				if err != nil {
					t.Fatalf("%v\n%s", err, line)
				}
				if len(fields) != want[f] {
					t.Fatalf("%d fields, want %d: %q", len(fields), want[f], fields)
				}
				sawQuote = sawQuote || bytes.Contains(line, []byte(`\x22`))
				sawNonASCI = sawNonASCI || bytes.Contains(line, []byte(`\xD0`))
				st, err := strconv.Atoi(fields[5])
				if err != nil || st < 100 || st > 599 {
					t.Fatalf("status %q: %s", fields[5], line)
				}
				status[st]++
				b, err := strconv.ParseInt(fields[6], 10, 64)
				if err != nil {
					t.Fatalf("body_bytes_sent %q: %s", fields[6], line)
				}
				body += b
				if fields[1] != "-" || fields[2] != "-" || !strings.HasPrefix(fields[3], "[") {
					t.Fatalf("bad prefix: %s", line)
				}
				if f != MainTimed {
					continue
				}
				if g.Last().VHost != fields[10] {
					t.Fatalf("$host %q, generator says %q", fields[10], g.Last().VHost)
				}
				reqMs += sumMillis(t, fields[11])
				upMs += sumMillis(t, fields[12])
				sumMillis(t, fields[13])
				sumMillis(t, fields[14])
				if id := fields[17]; len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
					t.Fatalf("request id %q", id)
				}
				// Every upstream list has as many entries as there were attempts.
				n := strings.Count(fields[16], ",") + strings.Count(fields[16], " : ")
				for _, i := range []int{12, 13, 14, 15} {
					if m := strings.Count(fields[i], ",") + strings.Count(fields[i], " : "); m != n {
						t.Fatalf("field %d has %d separators, $upstream_addr %d: %s", i, m, n, line)
					}
				}
			}
			if !sawQuote || !sawNonASCI {
				t.Errorf("no escaped quote (%v) or escaped UTF-8 (%v) in 50000 lines", sawQuote, sawNonASCI)
			}
			tot := g.Totals()
			if tot.Lines != 50000 || tot.Malformed != 0 || tot.Requests != 50000 {
				t.Errorf("totals lines %d malformed %d requests %d", tot.Lines, tot.Malformed, tot.Requests)
			}
			if fmt.Sprint(status) != fmt.Sprint(tot.Statuses) {
				t.Errorf("statuses read back %v, totals %v", status, tot.Statuses)
			}
			if body != tot.BodyBytes {
				t.Errorf("body bytes read back %d, totals %d", body, tot.BodyBytes)
			}
			if f == MainTimed && (reqMs != tot.RequestTimeMillis || upMs != tot.UpstreamResponseTimeMillis) {
				t.Errorf("times read back %d/%d ms, totals %d/%d", reqMs, upMs, tot.RequestTimeMillis, tot.UpstreamResponseTimeMillis)
			}
		})
	}
}

type jsonLine struct {
	Time                 string  `json:"time"`
	RemoteAddr           string  `json:"remote_addr"`
	Request              string  `json:"request"`
	Status               int     `json:"status"`
	BodyBytesSent        int64   `json:"body_bytes_sent"`
	RequestTime          float64 `json:"request_time"`
	UpstreamResponseTime string  `json:"upstream_response_time"`
	UpstreamStatus       string  `json:"upstream_status"`
	UpstreamAddr         string  `json:"upstream_addr"`
	Host                 string  `json:"host"`
	UserAgent            string  `json:"http_user_agent"`
	Referer              string  `json:"http_referer"`
	RequestID            string  `json:"request_id"`
}

func TestJSONLines(t *testing.T) {
	g := newGen(t, WithFormat(JSON), Seed(11))
	keys := strings.Fields("time remote_addr request status body_bytes_sent request_time upstream_response_time upstream_status upstream_addr host http_user_agent http_referer request_id")
	var (
		line       []byte
		reqMs      float64
		upMs, body int64
	)
	for range 50000 {
		line = g.Next(line[:0])
		if i := bytes.IndexFunc(line, func(r rune) bool { return r < 0x20 }); i >= 0 {
			t.Fatalf("raw control byte at %d: %q", i, line)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if len(m) != len(keys) {
			t.Fatalf("%d keys, want %d: %s", len(m), len(keys), line)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Fatalf("no key %s: %s", k, line)
			}
		}
		var l jsonLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if _, err := time.Parse(time.RFC3339, l.Time); err != nil {
			t.Fatal(err)
		}
		if l.Status != g.Last().Status || l.Host != g.Last().VHost {
			t.Fatalf("status/host %d %s, generator says %+v", l.Status, l.Host, g.Last())
		}
		if l.UpstreamAddr == "" && (l.UpstreamStatus != "" || l.UpstreamResponseTime != "") {
			t.Fatalf("upstream fields without an upstream: %s", line)
		}
		reqMs += l.RequestTime * 1000
		upMs += sumMillis(t, l.UpstreamResponseTime)
		body += l.BodyBytesSent
	}
	tot := g.Totals()
	if int64(reqMs+0.5) != tot.RequestTimeMillis || upMs != tot.UpstreamResponseTimeMillis || body != tot.BodyBytes {
		t.Errorf("read back %v ms, %d ms, %d bytes; totals %+v", reqMs, upMs, body, tot)
	}
}

func TestMalformed(t *testing.T) {
	for _, f := range allFormats {
		t.Run(f.String(), func(t *testing.T) {
			g := newGen(t, WithFormat(f), MalformedRatio(1))
			var line []byte
			for range 2000 {
				line = g.Next(line[:0])
				k := g.Last().Kind
				if !k.Malformed() {
					t.Fatalf("ratio 1 gave a %v line", k)
				}
				if bytes.IndexByte(line, '\n') >= 0 {
					t.Fatalf("%v line holds a newline", k)
				}
				var ok bool
				if f == JSON {
					ok = json.Valid(line)
				} else {
					var fields []string
					fields, err := splitText(string(line))
					ok = err == nil && len(fields) == map[Format]int{Combined: 9, Main: 10, MainTimed: 18}[f]
				}
				if ok {
					t.Fatalf("malformed %v line reads as valid: %q", k, line)
				}
			}
			tot := g.Totals()
			if tot.Malformed != 2000 || tot.Requests != 0 || len(tot.Statuses) != 0 {
				t.Errorf("totals: %+v", tot)
			}
			for _, k := range []Kind{KindTruncated, KindForeign, KindBinary} {
				if tot.Kinds[k] < 300 {
					t.Errorf("only %d %v lines", tot.Kinds[k], k)
				}
			}
		})
	}
}

// TestMix checks the traffic's proportions over 100k lines against what a
// real shop's logs look like; tolerances are wide, the shape is the point.
func TestMix(t *testing.T) {
	const n = 100000
	g := newGen(t, WithFormat(MainTimed), MalformedRatio(0.01), Seed(5))
	var (
		line                                       []byte
		ipv6, retries, groups, slow, xff, tls, emp int
		vhosts                                     = map[string]int{}
	)
	for range n {
		line = g.Next(line[:0])
		switch g.Last().Kind {
		case KindTLS:
			tls++
			if !bytes.Contains(line, []byte(`"\x16\x03\x01\x00\xCA\x01`)) || !bytes.Contains(line, []byte(`" 400 `)) {
				t.Fatalf("TLS line: %s", line)
			}
			continue
		case KindEmpty:
			emp++
			if !bytes.Contains(line, []byte(`] "-" 400 0 "-" "-"`)) {
				t.Fatalf("empty request line: %s", line)
			}
			continue
		case KindRequest:
		default:
			continue
		}
		fields, err := splitText(string(line))
		if err != nil {
			t.Fatal(err)
		}
		vhosts[fields[10]]++
		if strings.Contains(fields[0], ":") {
			ipv6++
		}
		if strings.Contains(fields[15], ", ") {
			retries++
		}
		if strings.Contains(fields[15], " : ") {
			groups++
		}
		if fields[9] != `"-"` {
			xff++
		}
		if ms := sumMillis(t, fields[11]); ms >= 1000 {
			slow++
		}
	}
	tot := g.Totals()
	share := func(v int64) float64 { return float64(v) / float64(tot.Requests) }
	for _, c := range []struct {
		what     string
		got      float64
		min, max float64
	}{
		{"malformed", float64(tot.Malformed) / n, 0.008, 0.012},
		{"200", share(tot.Statuses[200]), 0.75, 0.92},
		{"2xx", share(tot.Classes[2]), 0.85, 0.97},
		{"3xx", share(tot.Classes[3]), 0.02, 0.08},
		{"4xx", share(tot.Classes[4]), 0.02, 0.08},
		{"5xx", share(tot.Classes[5]), 0.002, 0.015},
		{"304", share(tot.Statuses[304]), 0.01, 0.06},
		{"404", share(tot.Statuses[404]), 0.01, 0.04},
		{"499", share(tot.Statuses[499]), 0.001, 0.006},
		{"502", share(tot.Statuses[502]), 0.0005, 0.004},
		{"504", share(tot.Statuses[504]), 0.0002, 0.002},
		{"GET", share(tot.Methods["GET"]), 0.70, 0.90},
		{"POST", share(tot.Methods["POST"]), 0.04, 0.15},
		{"PUT", share(tot.Methods["PUT"]), 0.002, 0.03},
		{"DELETE", share(tot.Methods["DELETE"]), 0.001, 0.02},
		{"HEAD", share(tot.Methods["HEAD"]), 0.001, 0.02},
		{"OPTIONS", share(tot.Methods["OPTIONS"]), 0.005, 0.04},
		{"shop", share(int64(vhosts["shop.example.com"])), 0.35, 0.45},
		{"api", share(int64(vhosts["api.example.com"])), 0.30, 0.40},
		{"static", share(int64(vhosts["static.example.com"])), 0.18, 0.26},
		{"default server", share(tot.VHosts["_"]), 0.02, 0.06},
		{"IPv6", share(int64(ipv6)), 0.03, 0.2},
		{"X-Forwarded-For", share(int64(xff)), 0.05, 0.2},
		{"upstream retries", share(int64(retries)), 0.003, 0.02},
		{"upstream groups", share(int64(groups)), 0.0003, 0.004},
		{"request_time >= 1s", share(int64(slow)), 0.001, 0.01},
		{"TLS handshakes", share(int64(tls)), 0.0005, 0.0015},
		{"empty requests", share(int64(emp)), 0.001, 0.002},
	} {
		if c.got < c.min || c.got > c.max {
			t.Errorf("%s: %.4f, want within [%v, %v]", c.what, c.got, c.min, c.max)
		}
	}
	if tot.Hosts["web-1"]+tot.Hosts["web-2"] != n {
		t.Errorf("hosts %v", tot.Hosts)
	}
	var classes int64
	for _, v := range tot.Classes {
		classes += v
	}
	if classes != tot.Requests {
		t.Errorf("classes sum to %d, requests %d", classes, tot.Requests)
	}
}

type envelope struct {
	Timestamp string `json:"@timestamp"`
	Metadata  struct {
		Beat, Type, Version string
	} `json:"@metadata"`
	Message string `json:"message"`
	Log     struct {
		Offset int64 `json:"offset"`
		File   struct {
			Path string `json:"path"`
		} `json:"file"`
	} `json:"log"`
	Input struct {
		Type string `json:"type"`
	} `json:"input"`
	Host struct {
		Name string `json:"name"`
	} `json:"host"`
	Agent struct {
		EphemeralID string `json:"ephemeral_id"`
		ID          string `json:"id"`
		Name        string `json:"name"`
		Type        string `json:"type"`
		Version     string `json:"version"`
	} `json:"agent"`
	ECS struct {
		Version string `json:"version"`
	} `json:"ecs"`
}

// validUTF8 is what Go's JSON encoder makes of b: each invalid byte becomes
// U+FFFD.
func validUTF8(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		s.WriteRune(r)
		b = b[size:]
	}
	return s.String()
}

func TestEnvelope(t *testing.T) {
	for _, f := range allFormats {
		t.Run(f.String(), func(t *testing.T) {
			g := newGen(t, WithFormat(f), Envelope(true), MalformedRatio(0.05), Hosts("web-1", "web-2", "web-3"), FilePath("/var/log/nginx/shop.log"))
			offsets := map[string]int64{}
			var rec []byte
			for range 20000 {
				rec = g.Next(rec[:0])
				var top map[string]json.RawMessage
				if err := json.Unmarshal(rec, &top); err != nil {
					t.Fatalf("%v: %s", err, rec)
				}
				for _, k := range []string{"@timestamp", "@metadata", "message", "log", "input", "host", "agent", "ecs"} {
					if _, ok := top[k]; !ok {
						t.Fatalf("no %s: %s", k, rec)
					}
				}
				var e envelope
				if err := json.Unmarshal(rec, &e); err != nil {
					t.Fatal(err)
				}
				if want := validUTF8(g.line); e.Message != want {
					t.Fatalf("message does not round-trip:\n got %q\nwant %q", e.Message, want)
				}
				if _, err := time.Parse("2006-01-02T15:04:05.000Z", e.Timestamp); err != nil {
					t.Fatal(err)
				}
				if e.Metadata.Beat != "filebeat" || e.Metadata.Type != "_doc" || e.Metadata.Version != beatVersion ||
					e.Input.Type != "filestream" || e.ECS.Version != "8.0.0" || e.Agent.Type != "filebeat" ||
					e.Agent.Name != e.Host.Name || len(e.Agent.ID) != 36 || len(e.Agent.EphemeralID) != 36 ||
					e.Log.File.Path != "/var/log/nginx/shop.log" || e.Host.Name != g.Last().Host {
					t.Fatalf("envelope fields: %s", rec)
				}
				if e.Log.Offset != offsets[e.Host.Name] {
					t.Fatalf("%s: offset %d, want %d", e.Host.Name, e.Log.Offset, offsets[e.Host.Name])
				}
				offsets[e.Host.Name] += int64(len(g.line)) + 1
			}
			tot := g.Totals()
			var sum int64
			for _, o := range offsets {
				sum += o
			}
			if sum != tot.Bytes+tot.Lines {
				t.Errorf("offsets sum to %d, lines hold %d bytes + %d newlines", sum, tot.Bytes, tot.Lines)
			}
		})
	}
}

func TestNoAllocs(t *testing.T) {
	for _, f := range allFormats {
		for _, env := range []bool{false, true} {
			g := newGen(t, WithFormat(f), Envelope(env), MalformedRatio(0.05))
			buf := make([]byte, 0, 64<<10)
			for range 1000 {
				buf = g.Next(buf[:0])
			}
			if a := testing.AllocsPerRun(20000, func() { buf = g.Next(buf[:0]) }); a != 0 {
				t.Errorf("%v envelope=%v: %v allocs per line", f, env, a)
			}
		}
	}
}

func BenchmarkNext(b *testing.B) {
	for _, f := range allFormats {
		for _, env := range []bool{false, true} {
			name := f.String()
			if env {
				name += "+envelope"
			}
			b.Run(name, func(b *testing.B) {
				g := newGen(b, WithFormat(f), Envelope(env), MalformedRatio(0.001))
				buf := make([]byte, 0, 64<<10)
				var n int64
				b.ReportAllocs()
				for b.Loop() {
					buf = g.Next(buf[:0])
					n += int64(len(buf))
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
				b.ReportMetric(float64(n)/float64(b.N), "B/line")
			})
		}
	}
}
