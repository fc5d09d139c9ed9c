package accesslog

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parser's output")

// TestGolden decodes every line of the hand-written logs in testdata and
// compares a text rendering of each Record (or error) with the .golden file
// beside it. Run `go test ./exporter/accesslog -update` after a deliberate
// change and review the diff.
func TestGolden(t *testing.T) {
	mainTimed := mustCompile(t, "main_timed", "main_timed", EscapeDefault)
	combined := mustCompile(t, "combined", "combined", EscapeDefault)
	jsonFmt := mustCompile(t, "json", "json", EscapeJSON)
	filebeat, err := NewDecoder(DecoderConfig{
		Default: mainTimed,
		Rules: []Rule{
			{Field: "fields.log_type", Match: regexp.MustCompile(`^nginx_json$`), Format: jsonFmt},
			{Field: "log.file.path", Match: regexp.MustCompile(`[/\\]legacy[/\\]`), Format: combined},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file    string
		decoder *Decoder
	}{
		{"nginx_main_timed.log", mustDecoder(t, mainTimed)},
		{"nginx_json.log", mustDecoder(t, jsonFmt)},
		{"filebeat.ndjson", filebeat},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			var r Record
			sc := bufio.NewScanner(bytes.NewReader(in))
			sc.Buffer(nil, 1<<20)
			for n := 1; sc.Scan(); n++ {
				err := tc.decoder.Decode(sc.Bytes(), &r)
				fmt.Fprintf(&out, "%d [%s] %s\n", n, r.Format.Name(), summary(&r))
				if err != nil {
					fmt.Fprintf(&out, "%d   error: %s\n", n, errSummary(err))
				}
				if r.Enveloped {
					fmt.Fprintf(&out, "%d   line: %q\n", n, r.Line)
				}
			}
			golden := filepath.Join("testdata", tc.file+".golden")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				diffLines(t, want, out.Bytes())
			}
		})
	}
}

func mustDecoder(t *testing.T, f *Format) *Decoder {
	d, err := NewDecoder(DecoderConfig{Default: f})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// diffLines reports the first lines that differ, enough to see what changed.
func diffLines(t *testing.T, want, got []byte) {
	t.Helper()
	w, g := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b []byte
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if !bytes.Equal(a, b) {
			t.Errorf("line %d:\nwant %s\ngot  %s", i+1, a, b)
			if shown++; shown == 5 {
				break
			}
		}
	}
	t.Error("output differs from the golden file; run with -update if the change is intended")
}
