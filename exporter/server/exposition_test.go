package server

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"iter"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
)

// fakeExposition encodes its families as text, one gzip member each when
// asked, or fails.
type fakeExposition struct {
	families [][2]string // name, text
	err      error
}

func (f fakeExposition) Exposition(_ expfmt.Format, gzipped bool) (iter.Seq2[string, []byte], error) {
	if f.err != nil {
		return nil, f.err
	}
	return func(yield func(string, []byte) bool) {
		for _, fam := range f.families {
			b := []byte(fam[1])
			if gzipped {
				var zb bytes.Buffer
				zw := gzip.NewWriter(&zb)
				_, _ = zw.Write(b)
				_ = zw.Close()
				b = zb.Bytes()
			}
			if !yield(fam[0], b) {
				return
			}
		}
	}, nil
}

func TestMetricsWithExpositions(t *testing.T) {
	cluster := fakeExposition{families: [][2]string{
		{"a_first", "# TYPE a_first gauge\na_first 1\n"},
		{"zz_last", "# TYPE zz_last gauge\nzz_last 2\n"},
	}}
	for _, tc := range []struct {
		name        string
		expositions []Exposition
		encoding    string
		want        []string // in this order
		absent      []string
		errors      string // promhttp_metric_handler_errors_total{cause="gathering"}
	}{
		{
			name:        "in name order among the registry's",
			expositions: []Exposition{cluster},
			want:        []string{"a_first 1\n", "accesslog_test_total 3\n", "promhttp_metric_handler_errors_total", "zz_last 2\n"},
			errors:      "0",
		},
		{
			name:        "gzip members between the compressed ones",
			expositions: []Exposition{cluster},
			encoding:    "gzip",
			want:        []string{"a_first 1\n", "accesslog_test_total 3\n", "zz_last 2\n"},
			errors:      "0",
		},
		{
			name:        "a family the registry has is dropped and counted",
			expositions: []Exposition{fakeExposition{families: [][2]string{{"accesslog_test_total", "accesslog_test_total 99\n"}}}},
			want:        []string{"accesslog_test_total 3\n"},
			absent:      []string{"accesslog_test_total 99"},
			errors:      "1",
		},
		{
			name:        "a failing exposition leaves the registry served and is counted",
			expositions: []Exposition{fakeExposition{err: errors.New("boom")}, cluster},
			want:        []string{"a_first 1\n", "accesslog_test_total 3\n", "zz_last 2\n"},
			errors:      "1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{Expositions: tc.expositions}, testRegistry(t), nil, nil)
			get(t, s.Handler(), "/metrics") // counts its errors for the next
			rec := get(t, s.Handler(), "/metrics", "Accept-Encoding", tc.encoding)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200; body:\n%s", rec.Code, rec.Body)
			}
			body := rec.Body.String()
			if tc.encoding == "gzip" {
				if ce := rec.Header().Get("Content-Encoding"); ce != "gzip" {
					t.Fatalf("Content-Encoding %q, want gzip", ce)
				}
				zr, err := gzip.NewReader(rec.Body)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(zr)
				if err != nil {
					t.Fatal(err)
				}
				body = string(b)
			}
			at := 0
			for _, w := range tc.want {
				i := strings.Index(body[at:], w)
				if i < 0 {
					t.Fatalf("body lacks %q after byte %d:\n%s", w, at, body)
				}
				at += i + len(w)
			}
			for _, a := range tc.absent {
				if strings.Contains(body, a) {
					t.Errorf("body has %q", a)
				}
			}
			if want := "promhttp_metric_handler_errors_total{cause=\"gathering\"} " + tc.errors + "\n"; !strings.Contains(body, want) {
				t.Errorf("body lacks %q:\n%s", want, body)
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate, br", true},
		{"GZIP", true},
		{"gzip;q=0", false},
		{"identity", false},
		{"gzip, identity", false}, // equal weights: promhttp prefers identity
		{"gzip;q=1.0, identity;q=0.5", true},
		{"*", false},
		{"zstd", false},
		{"br;q=1, gzip;level=1;q=0.8", true},
	} {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
