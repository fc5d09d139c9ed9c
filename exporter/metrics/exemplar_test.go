package metrics

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

func openMetrics(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeOpenMetrics))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestExemplars(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rec       accesslog.Record
		on        bool
		want      string // in the OpenMetrics exposition; "" for no exemplar
		upstream  bool
		wantLines int
		invalid   string // reason counted in ExemplarsInvalid, if any
	}{
		{
			name: "trace id wins over request id",
			rec: exRec(func(r *accesslog.Record) {
				r.TraceID = []byte("4bf92f3577b34da6a3ce929d0e0e4736")
				r.RequestID = []byte("r1")
			}),
			on: true, want: `# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.25`, upstream: true,
		},
		{
			name: "request id when no trace id",
			rec:  exRec(func(r *accesslog.Record) { r.RequestID = []byte("a1b2c3") }),
			on:   true, want: `# {request_id="a1b2c3"} 0.25`, upstream: true,
		},
		{
			name: "no id, no exemplar",
			rec:  exRec(func(r *accesslog.Record) {}),
			on:   true,
		},
		{
			name: "a logged - is no id",
			rec:  exRec(func(r *accesslog.Record) { r.RequestID = []byte("-") }),
			on:   true,
		},
		{
			// The issue 13 reproduction: 10 runes of name plus 119 of value
			// made client_golang panic.
			name: "request id of 119 runes is cut to fit 128 with its name",
			rec:  exRec(func(r *accesslog.Record) { r.RequestID = []byte(strings.Repeat("r", 119)) }),
			on:   true, want: `# {request_id="` + strings.Repeat("r", 118) + `"} 0.25`, upstream: true, invalid: "too_long",
		},
		{
			name: "request id of 118 runes fits as it is",
			rec:  exRec(func(r *accesslog.Record) { r.RequestID = []byte(strings.Repeat("r", 118)) }),
			on:   true, want: `# {request_id="` + strings.Repeat("r", 118) + `"} 0.25`, upstream: true,
		},
		{
			name: "trace id of 130 runes is cut at 120",
			rec:  exRec(func(r *accesslog.Record) { r.TraceID = []byte(strings.Repeat("a", 130)) }),
			on:   true, want: `# {trace_id="` + strings.Repeat("a", 120) + `"} 0.25`, upstream: true, invalid: "too_long",
		},
		{
			name: "runes, not bytes, are counted and never split",
			rec:  exRec(func(r *accesslog.Record) { r.RequestID = []byte(strings.Repeat("é", 200)) }),
			on:   true, want: `# {request_id="` + strings.Repeat("é", 118) + `"} 0.25`, upstream: true, invalid: "too_long",
		},
		{
			name: "request id that is not UTF-8 is dropped",
			rec:  exRec(func(r *accesslog.Record) { r.RequestID = []byte("abc\xffdef") }),
			on:   true, invalid: "invalid_utf8",
		},
		{
			name: "trace id that is not UTF-8 is dropped",
			rec:  exRec(func(r *accesslog.Record) { r.TraceID = []byte("\xc3\x28") }),
			on:   true, invalid: "invalid_utf8",
		},
		{
			name: "switched off",
			rec:  exRec(func(r *accesslog.Record) { r.TraceID = []byte("4bf92f3577b34da6a3ce929d0e0e4736") }),
			on:   false,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default().Metrics
			cfg.Exemplars = tc.on
			reg := prometheus.NewRegistry()
			m, err := New(cfg, reg)
			if err != nil {
				t.Fatal(err)
			}
			m.Observe(&tc.rec)
			out := openMetrics(t, reg)
			for _, reason := range []string{"too_long", "invalid_utf8"} {
				want := 0.0
				if reason == tc.invalid {
					want = 1
				}
				if got := counters(t, reg, ExemplarsInvalid)["reason="+reason]; got != want {
					t.Errorf("%s{reason=%q} = %v, want %v", ExemplarsInvalid, reason, got, want)
				}
			}
			if tc.want == "" {
				if strings.Contains(out, "# {") {
					t.Errorf("unexpected exemplar:\n%s", grep(out, "# {"))
				}
				return
			}
			dur := grep(out, "accesslog_http_request_duration_seconds_bucket")
			if !strings.Contains(dur, tc.want) {
				t.Errorf("request duration buckets lack %q:\n%s", tc.want, dur)
			}
			up := grep(out, "accesslog_http_upstream_duration_seconds_bucket")
			if tc.upstream && !strings.Contains(up, strings.Replace(tc.want, "0.25", "0.2", 1)) {
				t.Errorf("upstream buckets lack the exemplar:\n%s", up)
			}
		})
	}
}

// Exemplars are rate-limited per series: a burst of lines leaves one.
func TestExemplarsRateLimited(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(config.Default().Metrics, reg)
	if err != nil {
		t.Fatal(err)
	}
	r := exRec(func(r *accesslog.Record) { r.RequestID = []byte("first") })
	m.Observe(&r)
	r.RequestID = []byte("second")
	for range 1000 {
		m.Observe(&r)
	}
	out := openMetrics(t, reg)
	if !strings.Contains(out, `request_id="first"`) || strings.Contains(out, `request_id="second"`) {
		t.Errorf("want only the first line's exemplar within one interval:\n%s", grep(out, "# {"))
	}
}

func exRec(edit func(*accesslog.Record)) accesslog.Record {
	r := accesslog.Record{
		VHost: []byte("shop.example.com"), Method: []byte("GET"), Path: []byte("/"), Status: 200,
		RequestTime: 0.25, UpstreamResponseTime: 0.2, BodyBytes: 512, BytesSent: -1,
		UpstreamConnectTime: -1, UpstreamHeaderTime: -1,
	}
	edit(&r)
	return r
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
