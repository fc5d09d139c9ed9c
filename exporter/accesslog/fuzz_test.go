package accesslog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Seeds shared by the line fuzzers: real lines of every shape the golden
// files cover, plus the edge cases that once needed care.
var lineSeeds = []string{
	benchCombined,
	benchMainTimed,
	rawLineFmt,
	`198.51.100.4 - - [10/Oct/2025:13:55:36 +0200] "\x16\x03\x01\x00\xCA\x01\x00\x00\xC6\x03\x03" 400 157 "-" "-" "-" _ 0.001 - - - - - -`,
	`198.51.100.4 - - [10/Oct/2025:13:55:36 +0200] "-" 400 0 "-" "-" "-" _ 0.000 - - - - - -`,
	`10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "Mozilla/5.0 (Wind`,
	`10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET /a\"b\\c HTTP/1.1" 200 1 "-" "say \"hi\"" "-" h 0.1 - - - - - -`,
	`10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET /x HTTP/1.1" 200 3 "-" "Evil "agent" v1" "-" h 0.1 0.1, - : 0.2 - - 502, 200 a, b : c id`,
	"",
	`"`,
	`- - [`,
}

func fuzzParse(f *testing.F, e Escape) {
	for _, s := range lineSeeds {
		f.Add(s, "/index.html", "curl/8", uint16(200), uint32(123))
	}
	f.Add("", "/caf\xc3\xa9/\"x\"\\", "Mozilla \"quoted\" \x01\x7f\xff", uint16(404), uint32(60001))
	f.Add("", "", "", uint16(0), uint32(0))
	format := mustCompile(f, "main_timed", "main_timed", e)
	f.Fuzz(func(t *testing.T, line, path, ua string, status uint16, ms uint32) {
		var r Record

		// Any line: no panic; when it parses, its raw values and the
		// format's literals rebuild it byte for byte, and the rebuilt line
		// parses to the same Record.
		if err := format.Parse([]byte(line), &r); err == nil {
			want := summary(&r)
			back := renderLine(format, &r)
			if !bytes.Equal(back, r.Line) {
				t.Fatalf("raw values rebuild %q, not %q", back, r.Line)
			}
			// Terminated as a line again: Parse trims one line ending,
			// and a value may end in what is left of another.
			var r2 Record
			if err := format.Parse(append(back, "\r\n"...), &r2); err != nil || summary(&r2) != want {
				t.Fatalf("rebuilt line parses differently: %v\n%s\n%s", err, summary(&r2), want)
			}
		}

		// A line written the way nginx writes it parses back to its values.
		path = "/" + strings.NewReplacer(" ", "_", "?", "_").Replace(path)
		if e == EscapeNone && (strings.ContainsAny(path+ua, `"`) || strings.Contains(ua, "\n")) {
			return // escape=none cannot delimit these; nginx users accept that
		}
		st := 100 + int(status)%900
		sec := float64(ms%100000) / 1000
		built := fmt.Sprintf(`192.0.2.1 - - [10/Oct/2025:13:55:36 +0200] "GET %s HTTP/1.1" %d 12 "-" "%s" "-" h %.3f - - - - - id`,
			escapeValue([]byte(path), e), st, escapeValue([]byte(ua), e), sec)
		if err := format.Parse([]byte(built), &r); err != nil {
			t.Fatalf("Parse(%q): %v", built, err)
		}
		if string(r.Path) != path || r.Status != st || r.RequestTime != sec {
			t.Fatalf("Parse(%q): path %q status %d rt %v", built, r.Path, r.Status, r.RequestTime)
		}
		if got := string(Unescape(nil, r.Var(format.Index("http_user_agent")), e)); got != ua {
			t.Fatalf("user agent %q, want %q", got, ua)
		}
	})
}

func FuzzParseEscapeDefault(f *testing.F) { fuzzParse(f, EscapeDefault) }
func FuzzParseEscapeJSON(f *testing.F)    { fuzzParse(f, EscapeJSON) }
func FuzzParseEscapeNone(f *testing.F)    { fuzzParse(f, EscapeNone) }

func FuzzDecode(f *testing.F) {
	f.Add([]byte(envFB8), "msg", "host", "/path")
	f.Add([]byte(envFB6), "", "", "")
	f.Add([]byte(envFBWin), "\"\\\x00é\U0001F600\n", "h\u2028", `C:\x`)
	f.Add([]byte(`{"message":"x","fields":{"log_type":"nginx_json"}}`), "", "", "")
	f.Add([]byte(`{"message":42}`), "", "", "")
	f.Add([]byte(`{"message":null,"host":{"name":"h"}}`), "", "", "")
	f.Add([]byte(`{"message":"x","message":[1]}`), "", "", "")
	f.Add([]byte(`{"a":{"b":{"c":[[[{"message":"x"}]]]}},"message":"\ud800"}`), "", "", "")
	f.Add([]byte(rawLineFmt), "", "", "")
	for _, s := range lineSeeds {
		f.Add([]byte(s), "", "", "")
	}
	mainTimed := mustCompile(f, "main_timed", "main_timed", EscapeDefault)
	jsonFmt := mustCompile(f, "json", "json", EscapeJSON)
	d, err := NewDecoder(DecoderConfig{Default: mainTimed, Rules: []Rule{
		{Field: "fields.log_type", Match: mustRegexp("json"), Format: jsonFmt},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value []byte, msg, host, path string) {
		var r Record
		derr := d.Decode(value, &r)
		sameLineAgain(t, value, &r)
		// An envelope according to encoding/json must be one here too, with
		// the same message (when the JSON is valid UTF-8, where both agree
		// on replacement characters).
		var ev map[string]any
		if utf8.Valid(value) && !bytes.Contains(value, []byte(`\u`)) && json.Unmarshal(value, &ev) == nil && ev != nil {
			if m, ok := ev["message"].(string); ok && !r.Enveloped {
				t.Fatalf("not seen as an envelope: %q", value)
			} else if ok && string(r.Line) != string(trimEOL([]byte(m))) {
				t.Fatalf("Line %q, want %q", r.Line, m)
			}
			// A message that is there but not a string is a broken
			// envelope, not a line of the default format.
			if m, there := ev["message"]; there && !r.Enveloped {
				if _, isString := m.(string); !isString {
					if pe, ok := derr.(*ParseError); !ok || pe.Reason != ReasonBadJSON {
						t.Fatalf("message %v (%T): %v, want bad_json", m, m, derr)
					}
				}
			}
		}

		// An envelope built by a JSON encoder carries its fields through.
		b, _ := json.Marshal(map[string]any{
			"@timestamp": "2025-10-10T11:55:36.123Z",
			"message":    msg,
			"host":       map[string]any{"name": host},
			"log":        map[string]any{"offset": 1, "file": map[string]any{"path": path}},
		})
		var back struct {
			Message string `json:"message"`
			Host    struct{ Name string }
			Log     struct{ File struct{ Path string } }
		}
		_ = json.Unmarshal(b, &back)
		_ = d.Decode(b, &r)
		sameLineAgain(t, b, &r)
		if !r.Enveloped || string(r.Line) != string(trimEOL([]byte(back.Message))) ||
			string(r.Host) != back.Host.Name || string(r.File) != back.Log.File.Path ||
			!r.Timestamp.Equal(time.Date(2025, 10, 10, 11, 55, 36, 123e6, time.UTC)) {
			t.Fatalf("envelope %s decoded to line %q host %q file %q ts %v", b, r.Line, r.Host, r.File, r.Timestamp)
		}
	})
}

func FuzzJSON(f *testing.F) {
	f.Add([]byte(benchJSON))
	f.Add([]byte(`{"status":404, "request_time":0.5, "request":"GET /a\"b\\\/c HTTP/1.1", "remote_addr":"::1"}`))
	f.Add([]byte(`{"a":{"b":[1,{"c":"}"}]},"remote_addr":"x","remote_addr":"y"}`))
	f.Add([]byte(`{"status":"200","request":"GET / HTTP/1.1"`))
	f.Add([]byte(`{"remote_addr":"\"\\\u0041"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{} x`))
	f.Add([]byte(`{"remote_addr":null,"status":200e0}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"user":"alice","status":{"code":200}}`))
	format := mustCompile(f, "json", "json", EscapeJSON)
	nested := mustCompile(f, "nested", `{"a":{"b":"$remote_addr","c":"[$time_local] $status"},"d.e":$status}`, EscapeJSON)
	slot := format.Index("remote_addr")
	f.Fuzz(func(t *testing.T, line []byte) {
		// A ParseError lives in its Record until the next Parse: the nested
		// format gets a Record of its own, or err would be its error.
		var r, rn Record
		err := format.Parse(line, &r)
		_ = nested.Parse(line, &rn)

		var m map[string]any
		if !utf8.Valid(line) || bytes.Contains(line, []byte(`\u`)) || json.Unmarshal(line, &m) != nil || m == nil { // "null" unmarshals into a nil map
			return
		}
		if pe, ok := err.(*ParseError); ok && (pe.Reason == ReasonBadJSON || pe.Reason == ReasonTrailingData) {
			t.Fatalf("valid JSON object rejected: %v", err)
		}
		// Without a status it is no request, whatever else it holds.
		switch m["status"].(type) {
		case nil, map[string]any, []any:
			if pe, ok := err.(*ParseError); !ok || pe.Reason != ReasonMissingField {
				t.Fatalf("JSON object without a status: %v, want missing_field", err)
			}
		}
		_ = format.Parse(line, &r)
		if want, ok := m["remote_addr"].(string); ok {
			if got := string(Unescape(nil, r.Var(slot), EscapeJSON)); got != want {
				t.Fatalf("remote_addr %q, want %q", got, want)
			}
		}
	})
}

func FuzzTime(f *testing.F) {
	for _, s := range []string{
		"10/Oct/2025:13:55:36 +0200", "29/Feb/2024:23:59:59 -0945", "01/Jan/0000:00:00:00 +0000",
		"2025-10-10T13:55:36+02:00", "2025-10-10T11:55:36.123456789Z", "1728561336.123", "99999999999.9",
		"31/Dec/2199:23:59:59 +0000", "9999-12-31T23:59:59Z", "7258118400.000",
	} {
		f.Add(s, int64(1728561336123), int16(120))
	}
	f.Fuzz(func(t *testing.T, s string, unixMilli int64, offMin int16) {
		b := []byte(s)
		got, ok := parseAnyTime(b)
		if ok && (got.Unix() < minUnix || got.Unix() > maxUnix) {
			t.Fatalf("%q accepted as %v, outside the window", s, got)
		}
		if ok {
			var ref time.Time
			var err error
			switch {
			case len(b) == 26 && b[2] == '/':
				ref, err = time.Parse("02/Jan/2006:15:04:05 -0700", s)
			case len(b) >= 20 && b[4] == '-':
				if b[10] != 'T' || strings.Contains(s, ",") || b[len(b)-1] == 'z' {
					return // forms time.Parse's RFC 3339 does not take
				}
				ref, err = time.Parse(time.RFC3339Nano, s)
			default:
				x, perr := strconv.ParseFloat(s, 64)
				if perr != nil {
					t.Fatalf("%q accepted as $msec, strconv says %v", s, perr)
				}
				if d := got.Sub(time.Unix(0, 0)).Seconds() - x; math.Abs(d) > 1e-6*math.Max(1, x/1e9) {
					t.Fatalf("%q: %v, strconv %v", s, got, x)
				}
				return
			}
			if err != nil {
				t.Fatalf("%q accepted, time.Parse says %v", s, err)
			}
			_, o1 := got.Zone()
			_, o2 := ref.Zone()
			if !got.Equal(ref) || o1 != o2 {
				t.Fatalf("%q: %v, time.Parse %v", s, got, ref)
			}
		}

		// Every time nginx can write parses back to itself.
		unixMilli %= 1e14
		if unixMilli < 0 {
			unixMilli = -unixMilli
		}
		loc := time.FixedZone("", int(offMin)%(14*60)*60)
		tm := time.UnixMilli(unixMilli).In(loc)
		if tm.Year() > 9999 {
			return
		}
		// Within the window every form parses back; past it every form
		// fails (bad_time), never wraps.
		in := tm.Unix() <= maxUnix
		for _, layout := range []string{"02/Jan/2006:15:04:05 -0700", "2006-01-02T15:04:05-07:00"} {
			text := tm.Format(layout)
			p, ok := parseAnyTime([]byte(text))
			if ok != in || ok && !p.Equal(tm.Truncate(time.Second)) {
				t.Fatalf("%q: %v %v, want %v (in window: %v)", text, p, ok, tm, in)
			}
		}
		msec := fmt.Sprintf("%d.%03d", unixMilli/1000, unixMilli%1000)
		if p, ok := parseAnyTime([]byte(msec)); ok != in || ok && !p.Equal(tm) {
			t.Fatalf("%q: %v %v, want %v (in window: %v)", msec, p, ok, tm, in)
		}
	})
}

func FuzzUpstreamDurations(f *testing.F) {
	for _, s := range []string{"0.010, 0.020 : 0.030", "-", "0.001, -", "-, - : -", "", "1.5.5", ".5", "5.", "0.1234567891234", ", ", " : "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sum, n, ok := upstreamSum([]byte(s))
		last, lastN := upstreamLast([]byte(s))

		// The one-pass readers against the split they replaced, on any
		// input: the same result, bit for bit.
		if ss, sn, sok := splitUpstreamSum([]byte(s)); math.Float64bits(ss) != math.Float64bits(sum) || sn != n || sok != ok {
			t.Fatalf("%q: upstreamSum %v %d %v, split %v %d %v", s, sum, n, ok, ss, sn, sok)
		}
		if sl, sn := splitUpstreamLast([]byte(s)); !bytes.Equal(sl, last) || (sl == nil) != (last == nil) || sn != lastN {
			t.Fatalf("%q: upstreamLast %q %d, split %q %d", s, last, lastN, sl, sn)
		}

		// The reference splits the canonical syntax with strings.Split and
		// reads numbers with strconv; non-canonical spacing is only checked
		// for not crashing.
		var vals []string
		for _, group := range strings.Split(s, " : ") {
			vals = append(vals, strings.Split(group, ", ")...)
		}
		if s == "" {
			vals = nil
		}
		refSum, numeric, refOK := 0.0, false, true
		for _, v := range vals {
			if v == "" || strings.ContainsAny(v, " ,:") {
				return
			}
			if v == "-" {
				continue
			}
			intPart, _, _ := strings.Cut(v, ".")
			if strings.Trim(v, "0123456789.") != "" || strings.Count(v, ".") > 1 || v == "." || tooBig(intPart) {
				refOK = false
				continue
			}
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%q: reference cannot read %q: %v", s, v, err)
			}
			refSum += x
			numeric = true
		}
		if !numeric {
			refSum = -1
		}
		if ok != refOK {
			t.Fatalf("%q: ok=%v, reference %v", s, ok, refOK)
		}
		if !ok {
			return
		}
		if n != len(vals) {
			t.Fatalf("%q: %d values, reference %d", s, n, len(vals))
		}
		if math.Abs(sum-refSum) > 1e-9*float64(len(vals))+1e-12*math.Abs(refSum) {
			t.Fatalf("%q: sum %v, reference %v", s, sum, refSum)
		}
	})
}

// splitUpstream, splitUpstreamSum and splitUpstreamLast are the readers of
// nginx's multi-value upstream syntax before the one-pass ones: each value
// split off, then read.
func splitUpstream(b []byte) (val, rest []byte, ok bool) {
	if len(b) == 0 {
		return nil, nil, false
	}
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ',':
			j := i + 1
			if j < len(b) && b[j] == ' ' {
				j++
			}
			return b[:i], b[j:], true
		case ' ':
			j := i
			for j < len(b) && (b[j] == ' ' || b[j] == ':') {
				j++
			}
			return b[:i], b[j:], true
		}
	}
	return b, nil, true
}

func splitUpstreamSum(b []byte) (sum float64, n int, ok bool) {
	if isDash(b) {
		return -1, 1, true
	}
	var total int64
	numeric := false
	for v, rest, more := splitUpstream(b); more; v, rest, more = splitUpstream(rest) {
		n++
		if isDash(v) || len(v) == 0 {
			continue
		}
		ns, good := parseNanos(v)
		if !good || total > math.MaxInt64-ns {
			return 0, n, false
		}
		total += ns
		numeric = true
	}
	if !numeric {
		return -1, n, true
	}
	return seconds(total), n, true
}

func splitUpstreamLast(b []byte) (last []byte, n int) {
	if len(b) == 0 || isDash(b) {
		return nil, 0
	}
	for v, rest, more := splitUpstream(b); more; v, rest, more = splitUpstream(rest) {
		n++
		last = v
	}
	return last, n
}

// tooBig reports integer parts past what fits in int64 nanoseconds.
func tooBig(intPart string) bool {
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) > 10 {
		return true
	}
	n, _ := strconv.ParseInt("0"+intPart, 10, 64)
	return n > maxSeconds
}

// FuzzScanJSONString checks jsonStringEnd against a byte loop, and the
// envelope's one-pass message scan against the two passes it replaces:
// jsonStringEnd, then Unescape.
func FuzzScanJSONString(f *testing.F) {
	for _, s := range []string{`abc"`, `a\"b"`, `a\\"b"`, `\u00e9\ud83d\ude00x"`, `\u12"`, `\ud800\u"`, `\`, `\"`, `x\q"`, envLine + `"`, `""`, `0123456\"9abcdef\\"`, `0123456789abcdef0123456789abcde\"x"`, `\"a\"b\\c\"d"`, `a\"b\nc"`, `\"\\"`, `\"x\\\"y"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		naive := -1
		for i := 0; i < len(b); i++ {
			if b[i] == '\\' {
				i++
			} else if b[i] == '"' {
				naive = i
				break
			}
		}
		wantEnd := jsonStringEnd(b, 0)
		if wantEnd != naive {
			t.Fatalf("%q: jsonStringEnd %d, byte loop %d", b, wantEnd, naive)
		}
		end, text, copied, ok := scanJSONString(b, 0, nil)
		if ok != (wantEnd >= 0) || ok && end != wantEnd {
			t.Fatalf("%q: end %d ok %v, jsonStringEnd %d", b, end, ok, wantEnd)
		}
		if !ok {
			return
		}
		if want := Unescape(nil, b[:end], EscapeJSON); string(text) != string(want) {
			t.Fatalf("%q: text %q, Unescape %q", b, text, want)
		}
		if copied != needsUnescape(b[:end], EscapeJSON) {
			t.Fatalf("%q: copied %v with escapes %v", b, copied, !copied)
		}
		// Appended after what dst holds, which stays.
		if _, text2, copied2, _ := scanJSONString(b, 0, []byte("dst:")); copied2 && string(text2) != "dst:"+string(text) {
			t.Fatalf("%q: appended to dst: %q, want %q", b, text2, "dst:"+string(text))
		}
	})
}

// sameLineAgain checks that EnvelopeLine gives an envelope's Line again
// from Record.MessageAt, and that a raw line has none.
func sameLineAgain(t *testing.T, value []byte, r *Record) {
	t.Helper()
	if !r.Enveloped {
		if r.MessageAt != -1 {
			t.Fatalf("raw line %q: MessageAt %d, want -1", value, r.MessageAt)
		}
		return
	}
	line, ok := EnvelopeLine(value, r.MessageAt, make([]byte, 0, 8))
	if !ok || !bytes.Equal(line, r.Line) || (line == nil) != (r.Line == nil) {
		t.Fatalf("envelope %q: EnvelopeLine at %d = %q, %v; Line %q", value, r.MessageAt, line, ok, r.Line)
	}
}
