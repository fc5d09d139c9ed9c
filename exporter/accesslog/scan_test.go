package accesslog

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

// matchTree is the envelope field tree of a Decoder reading the fixed
// fields and the rule fields given.
func matchTree(tb testing.TB, ruleFields ...string) *field {
	f := mustCompile(tb, "c", "combined", EscapeDefault)
	cfg := DecoderConfig{Default: f}
	for _, rf := range ruleFields {
		cfg.Rules = append(cfg.Rules, Rule{Field: rf, Match: regexp.MustCompile(`x`), Format: f})
	}
	d, err := NewDecoder(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &d.root
}

// checkMatch compares field.match on the key starting at b[0] with the
// two steps it saves: finding the key's end, then lookup.
func checkMatch(t *testing.T, root *field, b []byte) {
	t.Helper()
	wantEnd := jsonStringEnd(b, 0)
	var want *field
	if wantEnd >= 0 {
		want = root.lookup(b[:wantEnd])
	}
	f, ke, known := root.match(b, 0)
	if !known {
		if f != nil || ke >= 0 {
			t.Fatalf("%q: match gave up but returned %v at %d", b, f, ke)
		}
		return
	}
	if f != want {
		t.Fatalf("%q: match found %v, lookup %v", b, f, want)
	}
	if f != nil && ke != wantEnd {
		t.Fatalf("%q: match ends the key at %d, jsonStringEnd at %d", b, ke, wantEnd)
	}
	if f == nil && ke >= 0 && ke != wantEnd {
		t.Fatalf("%q: no field, and the key ends at %d, jsonStringEnd at %d", b, ke, wantEnd)
	}
}

func TestFieldMatch(t *testing.T) {
	trees := map[string][]string{
		"fixed":      nil,
		"rules":      {"fields.log_type", "kubernetes.pod.name", "a..b", "x.", "exactly8.longer_than_8_bytes"},
		"quoted":     {`fields.we"ird`, `fields.back\slash`, "fields.log_type"},
		"quotedRoot": {`we"ird.name`, `back\slash`},
	}
	keys := []string{
		`message"`, `@timestamp"`, `@timestaXp"`, `@timestamp.x"`, `@timestam"`, `@timestampx"`, `host"`, `host.name"`,
		`host.name.x"`, `host.nam"`, `hostname"`, `log.file.path"`, `log.file"`, `log.file.pat"`,
		`log"`, `lo"`, `logs"`, `source"`, `""`, `"`, `.."`, `message`, `mess`, ``, `host.name`,
		`fields.log_type"`, `fields.log_type.x"`, `fields.log_typ"`, `kubernetes.pod.name"`,
		`kubernetes"`, `kubernetes.pod.names"`, `a..b"`, `a.b"`, `a.."`, `x."`, `x.y"`, `x"`,
		`exactly8.longer_than_8_bytes"`, `exactly8"`, `exactly8.longer_than_8_byte"`, `exactly8.longer_than_9_bytes"`,
		`we"ird.name"`, `we\"ird.name"`, `back\slash"`, `back\\slash"`, `mes\"sage"`, `message\""`,
		`host\".name"`, `fields.we"ird"`, `fields.we\"ird"`, `fields.back\slash"`, `fields.log_type"`, `agent.hostname"`, `agent.hostname\\"`, `beat.hostname"`, `beat."`,
	}
	for name, rules := range trees {
		root := matchTree(t, rules...)
		t.Run(name, func(t *testing.T) {
			for _, k := range keys {
				checkMatch(t, root, []byte(k))
				checkMatch(t, root, []byte(k+`:"value"}`))
			}
		})
	}
}

func FuzzFieldMatch(f *testing.F) {
	f.Add("fields.log_type", []byte(`fields.log_type":"x"`))
	f.Add("a..b", []byte(`a..b"`))
	f.Add(`q"uote`, []byte(`q"uote"`))
	f.Add("exactly8.longer_than_8_bytes", []byte(`exactly8.longer_than_8_bytes"`))
	f.Add("", []byte(`@timestamp.x"`))
	f.Fuzz(func(t *testing.T, rule string, b []byte) {
		var rules []string
		for _, r := range strings.Split(rule, ",") {
			if r != "" && len(rules) < maxRules {
				rules = append(rules, r)
			}
		}
		root := matchTree(t, rules...)
		checkMatch(t, root, b)
		// The same key as the tail of the input, where the word the
		// names are compared with runs past the end.
		for cut := range min(len(b), 9) {
			checkMatch(t, root, b[:len(b)-cut])
		}
	})
}

// naiveStringEnd is the byte loop jsonStringEnd must agree with.
func naiveStringEnd(b []byte, pos int) int {
	for i := pos; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// TestJSONStringEnd puts escapes, backslash runs and quotes at every offset
// around the word boundaries of the 8-byte scan and past its 32 bytes, and
// cuts each string short.
func TestJSONStringEnd(t *testing.T) {
	pieces := []string{`\"`, `\\`, `\\\"`, `\\\\`, `\u00e9`, `\ud83d\ude00`, `\`, `"`, `\\"`, `{"a":[1,"}"]}`}
	for _, p := range pieces {
		for at := 0; at <= 41; at++ {
			for _, tail := range []string{`"`, `x"`, `\""`, ``, `\`} {
				s := strings.Repeat("a", at) + p + "bcd" + tail + `,"k":"v"`
				for cut := len(s); cut >= 0; cut -= 1 + cut/4 {
					b := []byte(s[:cut])
					for _, pos := range []int{0, 1} {
						if pos > len(b) {
							continue
						}
						if got, want := jsonStringEnd(b, pos), naiveStringEnd(b, pos); got != want {
							t.Fatalf("jsonStringEnd(%q, %d) = %d, want %d", b, pos, got, want)
						}
					}
				}
			}
		}
	}
}

// sameTime reports whether two parse results are the same instant in the
// same zone offset, or both failures.
func sameTime(t1 time.Time, ok1 bool, t2 time.Time, ok2 bool) bool {
	if ok1 != ok2 {
		return false
	}
	_, o1 := t1.Zone()
	_, o2 := t2.Zone()
	return !ok1 || t1.Equal(t2) && o1 == o2
}

// TestISO8601DayCache reads timestamps in turn through one date cache: each
// must parse as it does without it, whatever date the cache holds.
func TestISO8601DayCache(t *testing.T) {
	in := []string{
		"2025-10-10T11:55:36.789Z", "2025-10-10T11:55:37Z", "2025-10-10T23:59:59.999999999+02:00",
		"2025-10-10T24:00:00Z", "2025-10-10T11:60:00Z", "2025-10-10T11:00:60Z", "2025-10-10T11:55:36",
		"2025-10-10T11:55:36.Z", "2025-10-10T11:55:36+25:00", "2025-10-10 11:55:36-07:30",
		"2025-10-11T00:00:00Z", "2024-02-29T12:00:00Z", "2025-02-29T12:00:00Z", "2025-02-29T12:00:00Z",
		"2025-13-01T00:00:00Z", "2025-10-1xT00:00:00Z", "2199-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
		"1970-01-01T00:00:00+01:00", "2025-10-10T11:55:36.789Z", "2025-10-10X11:55:36Z", "2025-10-10T11:55",
	}
	var c isoDay
	for _, s := range in {
		t1, ok1 := parseISO8601Day([]byte(s), &c)
		t2, ok2 := parseISO8601([]byte(s))
		if !sameTime(t1, ok1, t2, ok2) {
			t.Errorf("%s: cached %v %v, uncached %v %v", s, t1, ok1, t2, ok2)
		}
	}
}

func FuzzISO8601DayCache(f *testing.F) {
	f.Add("2025-10-10T11:55:36.789Z", "2025-10-10T11:55:37+02:00")
	f.Add("2024-02-29T12:00:00Z", "2024-02-29T24:00:00Z")
	f.Fuzz(func(t *testing.T, first, second string) {
		var c isoDay
		parseISO8601Day([]byte(first), &c)
		t1, ok1 := parseISO8601Day([]byte(second), &c)
		t2, ok2 := parseISO8601([]byte(second))
		if !sameTime(t1, ok1, t2, ok2) {
			t.Fatalf("%q after %q: cached %v %v, uncached %v %v", second, first, t1, ok1, t2, ok2)
		}
	})
}

// quoteOrBackslash must flag exactly the first '"' or '\\' of a word: the
// bytes around the two (and those with the high bit set, which the one
// &^w relies on) in every position, at random.
func TestQuoteOrBackslash(t *testing.T) {
	near := []byte{'"', '\\', 0, 1, '!', '#', '[', ']', 0x7f, 0x80, 0x81, '"' | 0x80, '\\' | 0x80, 0xff, 'a'}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		var b [8]byte
		for j := range b {
			if rng.IntN(4) == 0 {
				b[j] = byte(rng.Uint32())
			} else {
				b[j] = near[rng.IntN(len(near))]
			}
		}
		want := bytes.IndexAny(b[:], `"\`)
		got := -1
		if m := quoteOrBackslash(binary.LittleEndian.Uint64(b[:])); m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if got != want {
			t.Fatalf("% x: first quote or backslash at %d, want %d", b, got, want)
		}
	}
}
