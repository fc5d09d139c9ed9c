package loggen

import (
	"encoding/json"
	"testing"
)

func TestEscapes(t *testing.T) {
	for _, tc := range []struct {
		name, in, nginx, nginxJSON string
	}{
		{"plain", "GET / HTTP/1.1", "GET / HTTP/1.1", "GET / HTTP/1.1"},
		{"quote and backslash", `a"b\c`, `a\x22b\x5Cc`, `a\"b\\c`},
		{"controls", "\t\n\x00\x1f", `\x09\x0A\x00\x1F`, `\t\n\u0000\u001f`},
		{"DEL and high bytes", "\x7f\xca\xd0\x9b", `\x7F\xCA\xD0\x9B`, "\x7f\xca\xd0\x9b"},
		{"TLS hello", "\x16\x03\x01\x00\xca", `\x16\x03\x01\x00\xCA`, "\\u0016\\u0003\\u0001\\u0000\xca"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendNginxEscaped(nil, tc.in)); got != tc.nginx {
				t.Errorf("default escaping: %q, want %q", got, tc.nginx)
			}
			if got := string(appendNginxJSONEscaped(nil, tc.in)); got != tc.nginxJSON {
				t.Errorf("escape=json: %q, want %q", got, tc.nginxJSON)
			}
		})
	}
}

func TestAppendMillis(t *testing.T) {
	for ms, want := range map[int64]string{0: "0.000", 7: "0.007", 12: "0.012", 250: "0.250", 1000: "1.000", 60001: "60.001"} {
		if got := string(appendMillis(nil, ms)); got != want {
			t.Errorf("appendMillis(%d) = %q, want %q", ms, got, want)
		}
	}
}

// FuzzAppendJSONString: whatever the bytes, the result is a valid JSON
// string body that decodes to the input with invalid UTF-8 replaced.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", `"\`, "\x16\x03\x01\x00\xca", "Планшет", "plain ascii text of some length", "\xff\xfe\n\t\"\\x", "\u2028"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		enc := append(appendJSONString([]byte{'"'}, b), '"')
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q encodes to invalid JSON %q: %v", b, enc, err)
		}
		if want := validUTF8(b); got != want {
			t.Fatalf("%q round-trips to %q, want %q", b, got, want)
		}
	})
}
