package deploy

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// decoderFor builds the exporter's decoder from a config's input section,
// as the pipeline does: the default format, the named ones, the rules.
func decoderFor(t *testing.T, cfg *config.Config) *accesslog.Decoder {
	t.Helper()
	compile := func(name, format, escape string) *accesslog.Format {
		esc, err := accesslog.ParseEscape(escape)
		if err != nil {
			t.Fatal(err)
		}
		f, err := accesslog.Compile(name, format, esc)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	dc := accesslog.DecoderConfig{Default: compile("default", cfg.Input.Format, cfg.Input.Escape)}
	byName := map[string]*accesslog.Format{}
	for _, nf := range cfg.Input.Formats {
		byName[nf.Name] = compile(nf.Name, nf.Format, nf.Escape)
		dc.Formats = append(dc.Formats, byName[nf.Name])
	}
	for _, r := range cfg.Input.Rules {
		dc.Rules = append(dc.Rules, accesslog.Rule{Field: r.Field, Match: regexp.MustCompile(r.Match), Format: byName[r.Format]})
	}
	d, err := accesslog.NewDecoder(dc)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// filebeatConfig is the part of filebeat.yml the exporter depends on.
type filebeatConfig struct {
	Inputs []struct {
		Type            string            `yaml:"type"`
		ID              string            `yaml:"id"`
		Paths           []string          `yaml:"paths"`
		Fields          map[string]string `yaml:"fields"`
		FieldsUnderRoot bool              `yaml:"fields_under_root"`
	} `yaml:"filebeat.inputs"`
	Processors []map[string]struct {
		Fields []string `yaml:"fields"`
	} `yaml:"processors"`
	Queue struct {
		Events int `yaml:"events"`
	} `yaml:"queue.mem"`
	Kafka struct {
		Hosts        []string `yaml:"hosts"`
		Topic        string   `yaml:"topic"`
		RequiredAcks int      `yaml:"required_acks"`
		Compression  string   `yaml:"compression"`
		Partition    struct {
			Hash []string `yaml:"hash"`
		} `yaml:"partition.hash"`
	} `yaml:"output.kafka"`
}

func TestFilebeatConfig(t *testing.T) {
	data, err := os.ReadFile("filebeat/filebeat.yml")
	if err != nil {
		t.Fatal(err)
	}
	var fb filebeatConfig
	if err := yaml.Unmarshal(data, &fb); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, in := range fb.Inputs {
		if in.Type != "filestream" {
			t.Errorf("input %q: type %q, want filestream (the log input is deprecated in Filebeat 8)", in.ID, in.Type)
		}
		if in.ID == "" || ids[in.ID] {
			t.Errorf("input id %q: filestream inputs need a unique, stable id", in.ID)
		}
		ids[in.ID] = true
		if in.FieldsUnderRoot || in.Fields["log_type"] == "" {
			t.Errorf("input %q: want fields.log_type (not under root): the exporter's input.rules match it", in.ID)
		}
	}
	for _, p := range fb.Processors {
		for _, f := range p["drop_fields"].Fields {
			if slices.Contains([]string{"message", "@timestamp", "host", "host.name", "log", "log.file", "log.file.path", "fields", "fields.log_type"}, f) {
				t.Errorf("drop_fields drops %s, which the exporter reads", f)
			}
		}
	}
	k := fb.Kafka
	if k.RequiredAcks != -1 {
		t.Errorf("output.kafka.required_acks = %d, want -1 (all in-sync replicas)", k.RequiredAcks)
	}
	if k.Compression == "" || k.Compression == "none" {
		t.Errorf("output.kafka.compression = %q, want a codec", k.Compression)
	}
	if !slices.Equal(k.Partition.Hash, []string{"host.name"}) {
		t.Errorf("output.kafka.partition.hash.hash = %v, want [host.name]", k.Partition.Hash)
	}
	if fb.Queue.Events <= 0 {
		t.Errorf("queue.mem.events = %d, want a bound", fb.Queue.Events)
	}
	cfg := loadExporterConfig(t, "systemd/exporter.yml")
	if k.Topic != cfg.Kafka.Topics[0] {
		t.Errorf("Filebeat writes topic %q, the exporter reads %v", k.Topic, cfg.Kafka.Topics)
	}
	if !slices.Equal(k.Hosts, cfg.Kafka.Brokers) {
		t.Errorf("Filebeat's brokers %v differ from the exporter's %v", k.Hosts, cfg.Kafka.Brokers)
	}
}

// The records Filebeat 8 writes with filebeat.yml, fed to the exporter's
// decoder built from the shipped exporter config: the envelope's host, file
// and time reach the Record, and each line is parsed with the format its
// input's fields.log_type selects.
func TestFilebeatRecordsDecode(t *testing.T) {
	dec := decoderFor(t, loadExporterConfig(t, "systemd/exporter.yml"))
	// And with nothing but the main_timed preset, as the default config
	// does: the main_timed lines still parse.
	mainOnly, err := accesslog.NewDecoder(accesslog.DecoderConfig{Default: mustCompile(t, "main_timed")})
	if err != nil {
		t.Fatal(err)
	}

	type want struct {
		host, file, format    string
		ts, lineTime          string
		vhost, method, path   string
		status, upstreamTries int
		requestTime, upstream float64
	}
	wants := []want{
		{"web-1", "/var/log/nginx/access.log", "default", "2026-11-24T10:15:02.481Z", "2026-11-24T11:15:02+01:00",
			"shop.example.com", "GET", "/api/v1/orders/12345", 200, 1, 0.042, 0.040},
		// Two upstream attempts (502, then 200): times summed, tries counted.
		{"web-1", "/var/log/nginx/access.log", "default", "2026-11-24T10:15:02.481Z", "2026-11-24T11:15:02+01:00",
			"shop.example.com", "POST", "/api/v1/checkout", 200, 2, 1.204, 1.203},
		// No upstream: every upstream value is "-".
		{"web-1", "/var/log/nginx/access.log", "default", "2026-11-24T10:15:03.502Z", "2026-11-24T11:15:03+01:00",
			"static.example.com", "GET", "/static/app.css", 304, 0, 0.000, -1},
		// The JSON access log, routed by fields.log_type to the json preset.
		{"web-2", "/var/log/nginx/access.json.log", "json", "2026-11-24T10:15:03.977Z", "2026-11-24T11:15:03+01:00",
			"api.example.com", "GET", "/search", 404, 1, 0.003, 0.002},
	}

	f, err := os.Open("filebeat/testdata/kafka-records.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var r accesslog.Record
	n := 0
	for ; sc.Scan(); n++ {
		if n >= len(wants) {
			t.Fatalf("more records than expected")
		}
		w := wants[n]
		if err := dec.Decode(sc.Bytes(), &r); err != nil {
			t.Errorf("record %d: %v", n+1, err)
			continue
		}
		ts, _ := time.Parse(time.RFC3339, w.ts)
		lt, _ := time.Parse(time.RFC3339, w.lineTime)
		checks := []struct {
			what      string
			got, want any
		}{
			{"enveloped", r.Enveloped, true},
			{"host", string(r.Host), w.host},
			{"file", string(r.File), w.file},
			{"format", r.Format.Name(), w.format},
			{"@timestamp", r.Timestamp.UTC(), ts.UTC()},
			{"line time", r.Time.UTC(), lt.UTC()},
			{"vhost", string(r.VHost), w.vhost},
			{"method", string(r.Method), w.method},
			{"path", string(r.Path), w.path},
			{"status", r.Status, w.status},
			{"upstream tries", r.UpstreamTries, w.upstreamTries},
			{"request time", r.RequestTime, w.requestTime},
			{"upstream response time", round3(r.UpstreamResponseTime), w.upstream},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("record %d: %s = %v, want %v", n+1, c.what, c.got, c.want)
			}
		}
		if w.format == "default" {
			if err := mainOnly.Decode(sc.Bytes(), &r); err != nil || string(r.Host) != w.host || r.Status != w.status {
				t.Errorf("record %d with the bare main_timed preset: err %v, host %q, status %d", n+1, err, r.Host, r.Status)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(wants) {
		t.Errorf("decoded %d records, want %d", n, len(wants))
	}
}

func mustCompile(t *testing.T, preset string) *accesslog.Format {
	t.Helper()
	format, esc, ok := accesslog.Preset(preset)
	if !ok {
		t.Fatalf("no preset %s", preset)
	}
	f, err := accesslog.Compile(preset, format, esc)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func round3(f float64) float64 {
	if f < 0 {
		return f
	}
	return float64(int64(f*1000+0.5)) / 1000
}
