package config

import (
	"os"
	"testing"
)

// FuzzParse: no input makes Parse panic, and whatever it accepts prints
// (String) to a file that it accepts again as the same config.
func FuzzParse(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte("kafka:\n  brokers: [a]\n  workers: many\nmetrics:\n  labels: [stauts]\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yml", data)
		if err != nil {
			return
		}
		back, err := Parse("printed.yml", []byte(c.String()))
		if err != nil {
			t.Fatalf("String() output does not parse: %v\n%s", err, c)
		}
		if !equal(*back, *c) {
			t.Fatalf("round trip changed the config:\n%s\n%s", c, back)
		}
	})
}

// FuzzParseByteSize: every size ParseByteSize accepts prints back to itself.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"0", "1048576", "1.5KiB", "50 MiB", "1gb", "-1", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if b < 0 {
			t.Fatalf("ParseByteSize(%q) = %d, negative", s, int64(b))
		}
		if back, err := ParseByteSize(b.String()); err != nil || back != b {
			t.Fatalf("ParseByteSize(%q) = %d prints as %q, which reads back as %d, %v", s, int64(b), b.String(), int64(back), err)
		}
	})
}
