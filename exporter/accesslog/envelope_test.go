package accesslog

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// The Decoder remembers across records: values it skipped (skip), the
// second of the last @timestamp (timestamp). Whatever came before, a
// record must decode as it does on a fresh Decoder.

// decoded renders everything Decode gives for value.
func decoded(d *Decoder, value []byte) string {
	var r Record
	err := d.Decode(value, &r)
	name := ""
	if r.Format != nil {
		name = r.Format.Name()
	}
	return fmt.Sprintf("%s line=%q at=%d format=%s err=%s", summary(&r), r.Line, r.MessageAt, name, errSummary(err))
}

// memoryDecoders builds the same Decoder twice, one to reuse and one to
// build again for each record.
func memoryDecoder(tb testing.TB) func() *Decoder {
	mainTimed := mustCompile(tb, "main_timed", "main_timed", EscapeDefault)
	jsonFmt := mustCompile(tb, "json", "json", EscapeJSON)
	return func() *Decoder {
		d, err := NewDecoder(DecoderConfig{Default: mainTimed, Rules: []Rule{
			{Field: "fields.log_type", Match: mustRegexp("json"), Format: jsonFmt},
		}})
		if err != nil {
			tb.Fatal(err)
		}
		return d
	}
}

// checkSequence decodes values in order with one Decoder and each with a
// fresh one, and reports every record where they differ.
func checkSequence(t *testing.T, newDecoder func() *Decoder, values ...string) {
	t.Helper()
	d := newDecoder()
	var errs []string
	for i, v := range values {
		got, want := decoded(d, []byte(v)), decoded(newDecoder(), []byte(v))
		if got != want {
			errs = append(errs, fmt.Sprintf("record %d %q:\n after the others: %s\n fresh:            %s", i, v, got, want))
		}
	}
	if len(errs) > 0 {
		t.Error(strings.Join(errs, "\n"))
	}
}

func nested(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }

func TestDecoderRemembers(t *testing.T) {
	newDecoder := memoryDecoder(t)
	meta := `{"beat":"filebeat","type":"_doc","version":"8.15.0"}`
	agent := `{"ephemeral_id":"99047acb-d097-4edb-a54f-c3cddf319d16","id":"4c9fff5a-4309-4c77-8e4e-d3a88e9b9980","name":"web-2","type":"filebeat","version":"8.15.0","hostname":"agent-2"}`
	env := func(ts, rest string) string {
		return `{"@timestamp":"` + ts + `","@metadata":` + meta + `,"message":"` + envLine + `"` + rest + `}`
	}
	for _, tc := range []struct {
		name   string
		values []string
	}{
		{"skipped values again", []string{
			env("2025-10-10T11:55:36.123Z", `,"input":{"type":"filestream"},"host":{"name":"web-2"},"agent":`+agent+`,"ecs":{"version":"8.0.0"}`),
			env("2025-10-10T11:55:36.124Z", `,"input":{"type":"filestream"},"host":{"name":"web-2"},"agent":`+agent+`,"ecs":{"version":"8.0.0"}`),
			env("2025-10-10T11:55:36.124Z", `,"input":{"type":"filestream"},"host":{"name":"web-2"},"agent":`+agent+`,"ecs":{"version":"8.0.0"}`+"\n"),
		}},
		{"a skipped value's bytes then cut short", []string{
			`{"message":"m","x":` + meta + `}`,
			`{"message":"m","x":` + meta[:len(meta)-1],
			`{"message":"m","x":` + meta[:len(meta)-1] + `,"y":1}}`,
		}},
		{"a skipped value's bytes then broken", []string{
			`{"message":"m","x":` + meta + `}`,
			`{"message":"m","x":` + strings.Replace(meta, `:"_doc"`, ` "_doc"`, 1) + `}`,
			`{"message":"m","x":` + strings.Replace(meta, `,"type"`, `,type"`, 1) + `}`,
		}},
		{"a value nested to the limit, then one level deeper", []string{
			`{"message":"m","x":` + nested(maxJSONDepth) + `}`,
			`{"message":"m","log":{"x":` + nested(maxJSONDepth) + `}}`,
			`{"message":"m","log":{"x":` + nested(maxJSONDepth-1) + `}}`,
			`{"message":"m","x":` + nested(maxJSONDepth+1) + `}`,
		}},
		{"the same bytes deeper first, then shallower", []string{
			`{"message":"m","log":{"x":` + nested(maxJSONDepth-1) + `}}`,
			`{"message":"m","x":` + nested(maxJSONDepth-1) + `}`,
		}},
		{"skipped arrays and strings", []string{
			`{"message":"m","tags":["a","b","c","d","e","f"],"s":"0123456789abcdef0123456789"}`,
			`{"message":"m","tags":["a","b","c","d","e","f"],"s":"0123456789abcdef0123456789"}`,
			`{"message":"m","tags":["a","b","c","d","e","f"`,
		}},
		// agent.hostname names the host only without host.name: once
		// host.name is read, the agent is skipped whole.
		{"agent after host.name", []string{
			env("2025-10-10T11:55:36.123Z", `,"host":{"name":"web-2"},"agent":`+agent),
			env("2025-10-10T11:55:36.123Z", `,"agent":`+agent),
			env("2025-10-10T11:55:36.123Z", `,"agent":`+agent+`,"host":{"name":"web-2"}`),
			env("2025-10-10T11:55:36.123Z", `,"host":{"name":null},"agent":`+agent),
			env("2025-10-10T11:55:36.123Z", `,"host":{"name":"web-2"},"agent":{"hostname":"a","id":[}`),
			env("2025-10-10T11:55:36.123Z", `,"host":{"name":"web-2"},"agent":"plain"`),
			env("2025-10-10T11:55:36.123Z", `,"host":"web-2","agent":`+agent),
			env("2025-10-10T11:55:36.123Z", `,"beat":{"hostname":"b"},"agent":`+agent),
			env("2025-10-10T11:55:36.123Z", `,"host":{"name":"web-2"},"beat":{"hostname":"b"}`),
		}},
		// Keys are remembered per object by their first 16 bytes.
		{"keys again", []string{
			`{"message":"m","host":{"name":"a","hostname":"b"},"log":{"file":{"path":"p"}},"a":1,"ab":2,"abcdefghijklmno":3,"abcdefghijklmnop":4}`,
			`{"message":"m","host":{"name":"a","hostname":"b"},"log":{"file":{"path":"p"}},"a":1,"ab":2,"abcdefghijklmno":3,"abcdefghijklmnop":4}`,
			`{"host":{"hostname":"b","name":"a"},"message":"m","log":{"file":{"path":"q"}}}`,
			`{"host":{"nam":"a","names":"b","name":"c"},"message":"m"}`,
			`{"host":{"na\u006de":"a"},"message":"m"}`,
			`{"host":{"na\u006de":"a"},"message":"m"}`,
			`{"host.name":"dotted","message":"m","log.file.path":"/p","log.file":{"path":"/q"}}`,
			`{"host.name":"dotted","message":"m","log.file.path":"/p","log.file":{"path":"/q"}}`,
			`{"name":"top","message":"m","path":"top"}`,
			`{"message":"m","host":{"name":"at the end"}}`,
			`{"message":"m","host":{"name"`,
			`{"message":"m","host":{"name":`,
			`{"message":"m","host":{"name":"x"`,
			`{"messagf":"m","message":"n","messag":"o","messagee":"p"}`,
			`{"message":"m","@timestamp":"2025-10-10T11:55:36.123Z","@timestampx":"x","@timestam":"y"}`,
			`{"message":"m","@timestampx":"x","@timestam":"y"}`,
			`{"message":"m","host":{"name":"a"},"h1":1,"h2":2,"h3":3,"h4":4,"h5":5,"host":{"name":"b"}}`,
			`{"message":"m","h1":1,"h2":2,"h3":3,"h4":4,"h5":5,"host":{"name":"c"}}`,
			`{"message" :"m", "host" : {"name" : "spaced"}}`,
			`{"message":"m","host":{"name":"spaced"} }`,
		}},
		{"@timestamp in one second", []string{
			env("2025-10-10T11:55:36.123Z", ""),
			env("2025-10-10T11:55:36.999Z", ""),
			env("2025-10-10T11:55:36.000Z", ""),
			env("2025-10-10T11:55:36.12aZ", ""),
			env("2025-10-10T11:55:36.1234Z", ""),
			env("2025-10-10T11:55:36.12Z", ""),
			env("2025-10-10T11:55:36.123z", ""),
			env("2025-10-10T11:55:36.123+00:00", ""),
			env("2025-10-10T11:55:36Z", ""),
			env("2025-10-10T11:55:37.001Z", ""),
			env("2025-10-10T11:55:36.001Z", ""),
			env("2025-10-11T11:55:36.001Z", ""),
			env("2199-12-31T23:59:59.999Z", ""),
			env("2199-12-31T23:59:59.998Z", ""),
			env("1970-01-01T00:00:00.000Z", ""),
			env("1970-01-01T00:00:00.001Z", ""),
			env("1970-01-01T00:00:00.000Z", ""),
			env("1969-12-31T23:59:59.999Z", ""),
			env("2025-10-10T11:55:36.\u0031\u0032\u0033Z", ""),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkSequence(t, newDecoder, tc.values...) })
	}
}

// A rule reading a field under agent keeps the agent walked.
func TestDecoderAgentRule(t *testing.T) {
	f := mustCompile(t, "main_timed", "main_timed", EscapeDefault)
	other := mustCompile(t, "other", "combined", EscapeDefault)
	d, err := NewDecoder(DecoderConfig{Default: f, Rules: []Rule{{Field: "agent.name", Match: mustRegexp("^special$"), Format: other}}})
	if err != nil {
		t.Fatal(err)
	}
	var r Record
	_ = d.Decode([]byte(`{"message":"`+envLine+`","host":{"name":"h"},"agent":{"name":"special","hostname":"a"}}`), &r)
	if r.Format != other || string(r.Host) != "h" {
		t.Errorf("format %s host %q, want other and h", r.Format.Name(), r.Host)
	}
}

// FuzzDecodeAfter decodes b after a with one Decoder and alone with a
// fresh one: what the Decoder remembers of a must not change b's record.
func FuzzDecodeAfter(f *testing.F) {
	meta := `{"beat":"filebeat","type":"_doc","version":"8.15.0"}`
	f.Add([]byte(envFB8), []byte(envFB8))
	f.Add([]byte(envFB8), []byte(envFB6))
	f.Add([]byte(`{"message":"m","x":`+meta+`}`), []byte(`{"message":"m","x":`+meta[:len(meta)-2]+`}`))
	f.Add([]byte(`{"message":"m","x":`+nested(maxJSONDepth)+`}`), []byte(`{"message":"m","log":{"x":`+nested(maxJSONDepth)+`}}`))
	f.Add([]byte(`{"@timestamp":"2025-10-10T11:55:36.123Z","message":"m"}`), []byte(`{"@timestamp":"2025-10-10T11:55:36.4x6Z","message":"m"}`))
	f.Add([]byte(`{"message":"m","host":{"name":"h"},"agent":{"hostname":"a"}}`), []byte(`{"message":"m","agent":{"hostname":"a"}}`))
	newDecoder := memoryDecoder(f)
	f.Fuzz(func(t *testing.T, a, b []byte) {
		d, fresh := newDecoder(), newDecoder()
		decoded(d, a)
		if got, want := decoded(d, b), decoded(fresh, b); got != want {
			t.Fatalf("%q after %q:\n %s\nfresh:\n %s", b, a, got, want)
		}
	})
}

// TestScalarEnds checks the table against the bytes JSON ends a scalar at,
// and a skipped number in an envelope at each of them.
func TestScalarEnds(t *testing.T) {
	d := memoryDecoder(t)()
	for c := 0; c < 256; c++ {
		want := strings.IndexByte(",}] \t\n\r:\"{[", byte(c)) >= 0
		if scalarEnds[c] != want {
			t.Errorf("scalarEnds[%q] = %v, want %v", byte(c), scalarEnds[c], want)
		}
		v := []byte(`{"message":"m","offset":12` + string([]byte{byte(c)}) + `}`)
		var r Record
		_ = d.Decode(v, &r)
		// Whitespace ends the number and any other byte that ends none
		// is read as part of it (the walk does not check numbers); the
		// rest are misplaced there.
		if enveloped := strings.IndexByte(`,}]:"{[`, byte(c)) < 0; r.Enveloped != enveloped {
			t.Errorf("%q: enveloped %v, want %v", v, r.Enveloped, enveloped)
		}
	}
}

// TestKeyCache: a remembered key is found by its first 16 bytes only when
// they are the key and its closing quote; a fifth key in a set replaces
// the oldest.
func TestKeyCache(t *testing.T) {
	var c keyCache
	fs := make([]field, 8)
	// As walk has them: the key, its quote, a colon and a value.
	words := func(key string) (uint64, uint64) {
		b := []byte(key + `":"value and more bytes"}`)
		return binary.LittleEndian.Uint64(b[0:8]), binary.LittleEndian.Uint64(b[8:16])
	}
	find := func(key string) (*field, int) {
		w1, w2 := words(key)
		return c.find(w1, w2, 0)
	}
	add := func(key string, f *field) { c.add([]byte(key+`"`), f) }
	var errs []string
	check := func(key string, want *field, wantEnd int) {
		if f, end := find(key); f != want || end != wantEnd {
			errs = append(errs, fmt.Sprintf("%q: %p at %d, want %p at %d", key, f, end, want, wantEnd))
		}
	}
	add(`ho`, &fs[0])
	add(`host`, &fs[1])
	check("ho", &fs[0], 2)
	check("host", &fs[1], 4)
	check("hos", nil, -1)
	check("hostx", nil, -1)
	add(`hostname`, &fs[2])
	check("hostname", &fs[2], 8)
	check("hostnamex", nil, -1)
	check("hostnam", nil, -1)
	// Five keys from "hos": the fifth replaces host.
	add(`hosta`, &fs[3])
	add(`hostb`, &fs[4])
	check("host", &fs[1], 4)
	add(`hostc`, &fs[5])
	check("host", nil, -1)
	for i, k := range []string{"hostname", "hosta", "hostb", "hostc"} {
		check(k, &fs[i+2], len(k))
	}
	check("ho", &fs[0], 2)
	add(`a`, &fs[6]) // one byte: its set is chosen with its quote and colon
	check("a", &fs[6], 1)
	check("b", nil, -1)
	add(`exactly_15_byte`, nil) // unknown keys are remembered too
	check("exactly_15_byte", nil, 15)
	add(`a_key_of_16_byte`, &fs[3]) // too long: not remembered
	check("a_key_of_16_byte", nil, -1)
	add(`e\"x`, &fs[3]) // escaped: not remembered
	check(`e\"x`, nil, -1)
	add(``, &fs[3]) // empty: not remembered
	check(``, nil, -1)
	if len(errs) > 0 {
		t.Error(strings.Join(errs, "\n"))
	}
}

// TestWalkNesting: the walk follows objects in and out in one loop; each
// key is looked up among the fields of the object it is in.
func TestWalkNesting(t *testing.T) {
	d := memoryDecoder(t)()
	var errs []string
	for _, tc := range []struct{ in, host, file string }{
		{`{"message":"m","host":{},"name":"top"}`, "", ""},
		{`{"message":"m","host":{ },"log":{"file":{"path":"/p"}},"name":"top"}`, "", "/p"},
		{`{"message":"m","log":{"file":{"path":"/p"},"path":"/q"},"path":"/r","host":{"name":"h"}}`, "h", "/p"},
		{`{"message":"m","log":{"file":{}},"host":{"os":{"name":"linux"},"name":"h"}}`, "h", ""},
		{`{"message":"m","log":{"file":{"x":{}},"y":[]},"host":{"name":"h","x":{"name":"inner"}}}`, "h", ""},
		{`{"message":"m","log":{"file":{"path":"/p"}} ,"host" : { "name" : "h" } }`, "h", "/p"},
		{`{"host":{"name":"h"},"log":{"file":{"path":"/p"}},"message":"m"}`, "h", "/p"},
		{`{"log":{"file":{"path":"/p"}}}`, "", ""},
	} {
		var r Record
		_ = d.Decode([]byte(tc.in), &r)
		if string(r.Host) != tc.host || string(r.File) != tc.file {
			errs = append(errs, fmt.Sprintf("%s: host %q file %q, want %q %q", tc.in, r.Host, r.File, tc.host, tc.file))
		}
	}
	if len(errs) > 0 {
		t.Error(strings.Join(errs, "\n"))
	}
}
