package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/demo"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
)

// The embedded demo's cluster, given to Run as ordinary brokers: the
// generated traffic is counted, Loki forwarding included.
func TestRunCountsDemoTraffic(t *testing.T) {
	store := newStore(t)
	cfg := config.Default()
	d, err := demo.New(demo.Options{Topic: cfg.Kafka.Topics[0], Rate: 2000})
	if err != nil {
		t.Fatal(err)
	}
	demoCtx, stopDemo := context.WithCancel(context.Background())
	demoDone := make(chan error, 1)
	go func() { demoDone <- d.Run(demoCtx) }()
	// After Run below: the final commits need the brokers.
	defer func() { stopDemo(); <-demoDone }()
	cfg.Kafka.Brokers = d.Brokers()
	cfg.Kafka.Group = "g-embedded"
	cfg.Kafka.CommitInterval = 100 * time.Millisecond
	cfg.Loki.URL = store.URL()
	cfg.Loki.Batch.MaxWait = 50 * time.Millisecond
	started := make(chan *server.Server, 1)
	reloads := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, &cfg, Options{
			Web:        &web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}, WebSystemdSocket: new(bool), WebConfigFile: new(string)},
			KafkaOpts:  []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond), kgo.FetchMaxWait(100 * time.Millisecond)},
			Started:    func(s *server.Server) { started <- s },
			Reloads:    reloads,
			ConfigFile: filepath.Join(t.TempDir(), "absent.yml"),
		})
	}()
	var metrics string
	select {
	case s := <-started:
		metrics = "http://" + s.Addr().String() + "/metrics"
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("server did not start")
	}
	// A reload whose file cannot be read is rejected; the run goes on.
	reloads <- struct{}{}
	deadline := time.Now().Add(30 * time.Second)
	var records, stored, reloadOK float64
	for {
		s := parse(t, get(t, metrics))
		records = s.sum("accesslog_exporter_records_total", nil)
		reloadOK = s.sum("accesslog_exporter_config_last_reload_successful", nil)
		stored = float64(store.Len())
		if (records >= 500 && stored >= 500 && reloadOK == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return within 30s of cancel")
	}
	if records < 500 || stored < 500 || reloadOK != 0 {
		t.Errorf("after generated traffic and a failed reload: %v records counted, %v lines stored, last reload successful %v; want 500, 500, 0", records, stored, reloadOK)
	}
}

// Setup mistakes end Run at once with an error that names the section.
func TestRunSetupErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*config.Config)
		listen string
		want   string
	}{
		{"loki password file", func(c *config.Config) {
			c.Loki.URL = "http://127.0.0.1:1"
			c.Loki.Auth.Username, c.Loki.Auth.PasswordFile = "u", filepath.Join(t.TempDir(), "absent")
		}, "127.0.0.1:0", "loki"},
		{"listen address", func(*config.Config) {}, "127.0.0.1:99999", "99999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Kafka.Brokers = []string{"127.0.0.1:1"}
			cfg.Health.Enabled = false
			tc.edit(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Run(ctx, &cfg, Options{
				Web: &web.FlagConfig{WebListenAddresses: &[]string{tc.listen}, WebSystemdSocket: new(bool), WebConfigFile: new(string)},
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || ctx.Err() != nil {
				t.Errorf("Run = %v (context %v), want an error naming %q at once", err, ctx.Err(), tc.want)
			}
		})
	}
}

// The reloadable collectors are registered and unregistered as a set.
func TestCollectorSet(t *testing.T) {
	var s collectorSet
	a, b := prometheus.NewCounter(prometheus.CounterOpts{Name: "a"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "b"})
	s.MustRegister(a, b)
	removed, again := s.Unregister(a), s.Unregister(a)
	if !removed || again || len(s.cs) != 1 || s.cs[0] != b {
		t.Errorf("unregister: %v then %v, left %d collectors; want true, false, only b", removed, again, len(s.cs))
	}
}

// Replay reads files whole, lines longer than its buffer and a last line
// without a newline included, and its summary names every failure.
func TestReplayFilesAndSummary(t *testing.T) {
	dir := t.TempDir()
	lines := genRaw(t, 50, 31, time.Now().Truncate(time.Second))
	a := filepath.Join(dir, "a.log")
	b := filepath.Join(dir, "b.log")
	long := "x" + strings.Repeat("y", 2<<20) // longer than the 1 MiB read buffer
	if err := os.WriteFile(a, append(bytes.Join(lines[:25], []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	// b: a malformed line, the 2 MiB line, then lines with no final newline.
	bb := append([]byte("garbage\n"+long+"\n"), bytes.Join(lines[25:], []byte("\n"))...)
	if err := os.WriteFile(b, bb, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	var out bytes.Buffer
	sum, err := Replay(&cfg, []string{a, b}, nil, &out)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	sum.WriteSummary(&text)
	if sum.Lines != 52 || sum.Parsed != 50 || sum.Failed != 2 || len(sum.Failures) != 2 ||
		sum.Failures[0].File != b || sum.Failures[0].Line != 1 || sum.Failures[1].Line != 2 {
		t.Errorf("summary %+v; want 52 lines, 50 parsed, failures at %s:1 and :2", sum, b)
	}
	for _, want := range []string{"replay: 52 lines, 50 parsed, 2 failed", "failed by reason:", "first 2 failures:", b + ":2: "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, text.String())
		}
	}
	if !strings.Contains(out.String(), "accesslog_http_requests_total") {
		t.Error("no request metrics written")
	}
	if _, err := Replay(&cfg, []string{filepath.Join(dir, "missing.log")}, nil, &out); err == nil {
		t.Error("a missing file is not an error")
	}
}

// Every mistake in the input section names its field.
func TestCompileInputNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(in *config.Input)
		want string
	}{
		{"default format", func(in *config.Input) { in.Format = "$remote_addr ${time_local" }, "input.format: "},
		{"escape", func(in *config.Input) { in.Escape = "yaml" }, "input.escape: "},
		{"named format", func(in *config.Input) {
			in.Formats = []config.NamedFormat{{Name: "ok", Format: "main"}, {Name: "bad", Format: "$x ${y"}}
		}, "input.formats[1].format: "},
		{"rule regexp", func(in *config.Input) {
			in.Formats = []config.NamedFormat{{Name: "m", Format: "main"}}
			in.Rules = []config.FormatRule{{Field: "log.file.path", Match: "(", Format: "m"}}
		}, "input.rules[0].match: "},
		{"rule format", func(in *config.Input) {
			in.Formats = []config.NamedFormat{{Name: "m", Format: "main"}}
			in.Rules = []config.FormatRule{{Field: "log.file.path", Match: "x", Format: "nope"}}
		}, `input.rules[0].format: unknown format "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			tc.edit(&cfg.Input)
			_, err := compileInput(&cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
	cfg := config.Default()
	cfg.Input.DefaultVHost = "default.example"
	cfg.Input.Formats = []config.NamedFormat{{Name: "m", Format: "main", DefaultVHost: "m.example"}, {Name: "j", JSON: true}}
	cfg.Input.Rules = []config.FormatRule{{Field: "log.file.path", Match: "json", Format: "j"}}
	d, err := compileInput(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for f, v := range d.vhosts {
		got[f.Name()] = v
	}
	if got["m"] != "m.example" || got["j"] != "default.example" || len(d.dc.Rules) != 1 {
		t.Errorf("default vhosts %v, %d rules; want m.example, default.example (inherited), 1 rule", got, len(d.dc.Rules))
	}
}
