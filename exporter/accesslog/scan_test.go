package accesslog

import (
	"regexp"
	"strings"
	"testing"
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
	if f == nil && ke >= 0 {
		t.Fatalf("%q: no field but an end %d", b, ke)
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
