package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// equal compares the schema values, not where they came from.
func equal(a, b Config) bool {
	a.file, a.lines, b.file, b.lines = "", nil, "", nil
	return reflect.DeepEqual(a, b)
}

func TestDefault(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default() does not validate:\n%v", err)
	}
	want := map[string]any{
		"brokers":      len(d.Kafka.Brokers) == 0,
		"topics":       reflect.DeepEqual(d.Kafka.Topics, []string{"nginxlog"}),
		"group":        d.Kafka.Group == "accesslog-exporter",
		"client_id":    d.Kafka.ClientID == "accesslog-exporter",
		"start_offset": d.Kafka.StartOffset == "earliest",
		"fetch":        d.Kafka.FetchMaxBytes == 4<<20 && d.Kafka.FetchMaxPartitionBytes == 128<<10,
		"fetch_wait":   d.Kafka.FetchMinBytes == 128<<10 && d.Kafka.FetchMinBytes <= d.Kafka.FetchMaxPartitionBytes && d.Kafka.FetchMaxWait == 250*time.Millisecond,
		"commit":       d.Kafka.CommitInterval == time.Second,
		"workers":      d.Kafka.Workers == 0,
		"format":       d.Input.Format == "main_timed" && d.Input.Escape == "default",
		"labels":       reflect.DeepEqual(d.Metrics.Labels, []string{"vhost", "method", "status", "status_class"}),
		"max_series":   d.Metrics.MaxSeries == 10000,
		"durations": reflect.DeepEqual(d.Metrics.Buckets.RequestDuration, []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}) &&
			reflect.DeepEqual(d.Metrics.Buckets.UpstreamDuration, d.Metrics.Buckets.RequestDuration),
		"sizes":    reflect.DeepEqual(d.Metrics.Buckets.ResponseSize, []float64{100, 1000, 10000, 100000, 1e6, 1e7, 1e8}),
		"factor":   d.Metrics.NativeHistogramBucketFactor == 1.1,
		"routes":   d.Metrics.Routes.Auto && len(d.Metrics.Routes.Rules) == 0,
		"compat":   !d.Metrics.NginxCompat,
		"inflight": d.Loki.MaxInflightBytes == 16<<20 && d.Loki.Batch.MaxBytes == 1<<20,
	}
	for name, ok := range want {
		if ok != true {
			t.Errorf("Default(): %s is not the documented default", name)
		}
	}

	// Each call is a fresh copy: changing one must not change the next.
	d.Metrics.Buckets.RequestDuration[0] = 99
	if Default().Metrics.Buckets.RequestDuration[0] != 0.005 {
		t.Error("Default() shares its slices between calls")
	}
}

func TestLoadNoFile(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !equal(*c, Default()) {
		t.Errorf("Load(\"\") is not Default():\n%s", c)
	}
	if got, want := c.Errorf("input.format", "bad").Error(), "<defaults>: input.format: bad"; got != want {
		t.Errorf("Errorf on defaults = %q, want %q", got, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yml") {
		t.Fatalf("Load of a missing file: %v, want an error naming it", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for name, text := range map[string]string{
		"empty":         "",
		"comments only": "# nothing here\n",
		"empty section": "kafka:\n",
		"document mark": "---\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse("config.yml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			if !equal(*c, Default()) {
				t.Errorf("got\n%s\nwant the defaults", c)
			}
		})
	}
}

// A key in the file replaces the default; a key left out keeps it; a list
// replaces the whole default list.
func TestParseOverlay(t *testing.T) {
	c, err := Parse("config.yml", []byte(`
kafka:
  brokers: [b1:9092, b2:9092]
  fetch_max_bytes: 10 MB
metrics:
  labels: [vhost]
  buckets:
    response_size: [10, 20]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Kafka.Brokers = []string{"b1:9092", "b2:9092"}
	want.Kafka.FetchMaxBytes = 10_000_000
	want.Metrics.Labels = []string{"vhost"}
	want.Metrics.Buckets.ResponseSize = []float64{10, 20}
	if !equal(*c, want) {
		t.Errorf("got\n%s\nwant\n%s", c, &want)
	}
}

func TestParseNormalises(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse("config.yml", []byte(`
kafka:
  sasl: {mechanism: scram-sha-512, username: u, password_file: `+pw+`}
input:
  formats: [{name: a, format: combined}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.SASL.Mechanism != "SCRAM-SHA-512" {
		t.Errorf("mechanism = %q, want SCRAM-SHA-512", c.Kafka.SASL.Mechanism)
	}
	if c.Input.Formats[0].Escape != "default" {
		t.Errorf("formats[0].escape = %q, want default", c.Input.Formats[0].Escape)
	}
}

func TestDurations(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"5s", 5 * time.Second},
		{"1m30s", 90 * time.Second},
		{"250ms", 250 * time.Millisecond},
		{`"2h"`, 2 * time.Hour},
	} {
		c, err := Parse("config.yml", []byte("kafka:\n  commit_interval: "+tc.in+"\n"))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if c.Kafka.CommitInterval != tc.want {
			t.Errorf("%s: got %v, want %v", tc.in, c.Kafka.CommitInterval, tc.want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		err  string
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "100B", want: 100},
		{in: "1KB", want: 1000},
		{in: "1MB", want: 1_000_000},
		{in: "2GB", want: 2_000_000_000},
		{in: "512KiB", want: 512 << 10},
		{in: "50MiB", want: 50 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "1 MiB", want: 1 << 20},
		{in: "1mib", want: 1 << 20},
		{in: "1.5KiB", want: 1536},
		{in: "9223372036854775807", want: 1<<63 - 1},
		{in: "", err: `invalid size "": want bytes as an integer or with a unit B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "lots", err: `invalid size "lots": want bytes as an integer or with a unit B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "1TB", err: `invalid size "1TB": want bytes as an integer or with a unit B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "-1", err: `invalid size "-1": must not be negative`},
		{in: "1.5B", err: `invalid size "1.5B": not a whole number of bytes`},
		{in: "9000000000GiB", err: `invalid size "9000000000GiB": too large`},
	} {
		got, err := ParseByteSize(tc.in)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("ParseByteSize(%q) error = %v, want %s", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseByteSize(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1500, "1500B"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1_000_000, "1MB"},
		{1024000, "1000KiB"},
		{50 << 20, "50MiB"},
		{3 << 30, "3GiB"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		if back, err := ParseByteSize(tc.want); err != nil || back != tc.in {
			t.Errorf("ParseByteSize(%q) = %d, %v, want %d", tc.want, back, err, tc.in)
		}
	}
}

func TestFullExample(t *testing.T) {
	c, err := Load("testdata/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Spot checks that the example says what its comments say.
	if c.Kafka.FetchMaxBytes != 100<<20 || c.Kafka.CommitInterval != 2*time.Second || !c.Kafka.TopicsRegex {
		t.Errorf("kafka section not as written:\n%s", c)
	}
	if len(c.Input.Formats) != 2 || len(c.Input.Rules) != 2 || len(c.Metrics.Routes.Rules) != 2 {
		t.Errorf("lists not as written:\n%s", c)
	}
	// Every key of the schema is in the example, so that it documents them all.
	for _, path := range allPaths(reflect.TypeFor[Config](), "") {
		if _, ok := c.lines[path]; !ok && !strings.Contains(path, "tls.") && !strings.Contains(path, "sasl.") {
			t.Errorf("testdata/full.yml does not show %s", path)
		}
	}
}

// allPaths lists the dotted paths of every field, with [0] for list items.
func allPaths(t reflect.Type, prefix string) []string {
	names, index := fieldsOf(t)
	var out []string
	for _, n := range names {
		p := n
		if prefix != "" {
			p = prefix + "." + n
		}
		out = append(out, p)
		ft := t.FieldByIndex(index[n]).Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			out = append(out, allPaths(ft.Elem(), p+"[0]")...)
		} else if ft.Kind() == reflect.Struct {
			out = append(out, allPaths(ft, p)...)
		}
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	full, err := Load("testdata/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	for name, c := range map[string]*Config{"defaults": &d, "full": full} {
		t.Run(name, func(t *testing.T) {
			text := c.String()
			back, err := Parse("printed.yml", []byte(text))
			if err != nil {
				t.Fatalf("String() output does not parse:\n%v\n%s", err, text)
			}
			if !equal(*back, *c) {
				t.Errorf("round trip changed the config:\nbefore:\n%s\nafter:\n%s", c, back)
			}
			if name == "defaults" && (!strings.Contains(text, "\n  fetch_max_bytes: 4MiB\n") || !strings.Contains(text, "\n  commit_interval: 1s\n")) {
				t.Errorf("sizes and durations are not in human form:\n%s", text)
			}
		})
	}
}

func TestErrorf(t *testing.T) {
	c, err := Parse("conf/config.yml", []byte(`# line 1
input:
  format: '$remote_addr $status$body_bytes_sent'
  formats:
    - name: a
      format: combined
metrics:
  labels:
    - vhost
    - route
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ field, want string }{
		{"input.format", "conf/config.yml:3: input.format: $status not followed by a literal"},
		{"input.formats[0]", "conf/config.yml:5: input.formats[0]: $status not followed by a literal"},
		{"input.formats[0].format", "conf/config.yml:6: input.formats[0].format: $status not followed by a literal"},
		{"metrics.labels[1]", "conf/config.yml:10: metrics.labels[1]: $status not followed by a literal"},
		{"metrics", "conf/config.yml:7: metrics: $status not followed by a literal"},
		// From the defaults: the file but no line.
		{"input.escape", "conf/config.yml: input.escape: $status not followed by a literal"},
	} {
		if got := c.Errorf(tc.field, "$status not followed by a %s", "literal").Error(); got != tc.want {
			t.Errorf("Errorf(%q):\n got %s\nwant %s", tc.field, got, tc.want)
		}
	}
}
