package pipeline

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// reloadFixture is a live pipeline without Kafka: a worker's handler, the
// reloader and the registry, driven line by line.
type reloadFixture struct {
	t    *testing.T
	file string
	reg  *prometheus.Registry
	l    *live
	r    *reloader
	p    *processor
}

func newReloadFixture(t *testing.T, yaml string) *reloadFixture {
	t.Helper()
	f := &reloadFixture{t: t, file: filepath.Join(t.TempDir(), "exporter.yml"), reg: prometheus.NewRegistry()}
	f.write(yaml)
	cfg, err := config.Load(f.file)
	if err != nil {
		t.Fatal(err)
	}
	if f.l, err = newLive(cfg, f.reg); err != nil {
		t.Fatal(err)
	}
	self, err := newSelfMetrics(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	if f.r, err = newReloader(f.file, nil, cfg, f.l, f.reg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	f.p = newProcessor(f.l, self, nil, nil, nil)
	return f
}

func (f *reloadFixture) write(yaml string) {
	if err := os.WriteFile(f.file, []byte(yaml), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// feed handles lines as one batch does: rules are picked up per batch.
func (f *reloadFixture) feed(lines ...string) {
	if r := f.l.load(); r != f.p.h.rules {
		f.p.h.use(r)
	}
	for _, l := range lines {
		f.p.h.handle([]byte(l), time.Now())
	}
}

func (f *reloadFixture) exposition() string {
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatalf("gather: %v", err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		_ = enc.Encode(mf)
	}
	return b.String()
}

const (
	combinedLine = `10.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "curl/8"`
	mainLine     = `10.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET /a HTTP/1.1" 503 5 "-" "curl/8" "-"`
)

func TestReloadRejectsBadConfigAndKeepsTheOld(t *testing.T) {
	f := newReloadFixture(t, "input:\n  format: combined\n  default_vhost: www\n")
	f.feed(combinedLine)
	f.write("input:\n  format: combined\nmetrics:\n  labels: [vhost, stauts]\n")
	err := f.r.Reload()
	if err == nil || !strings.Contains(err.Error(), f.file+`:4: metrics.labels[1]: unknown label "stauts"`) {
		t.Fatalf("Reload() = %v, want the file:line: field error", err)
	}
	if got := testutil.ToFloat64(f.r.ok); got != 0 {
		t.Errorf("last_reload_successful = %v, want 0", got)
	}
	f.feed(combinedLine)
	if !strings.Contains(f.exposition(), `accesslog_http_requests_total{method="GET",status="200",status_class="2xx",vhost="www"} 2`) {
		t.Errorf("old config not in force after a rejected reload:\n%s", grepLines(f.exposition(), "accesslog_http_requests_total"))
	}
}

func TestReloadKeepsCountersWhenMetricsUnchanged(t *testing.T) {
	f := newReloadFixture(t, "input:\n  format: combined\n  default_vhost: www\n")
	f.feed(combinedLine, combinedLine)
	// A new log format and default vhost; the metrics section is the same.
	f.write("input:\n  format: main\n  default_vhost: www\n")
	if err := f.r.Reload(); err != nil {
		t.Fatal(err)
	}
	f.feed(mainLine)
	out := f.exposition()
	if !strings.Contains(out, `accesslog_http_requests_total{method="GET",status="200",status_class="2xx",vhost="www"} 2`) {
		t.Errorf("counter reset or lost across the reload:\n%s", grepLines(out, "accesslog_http_requests_total"))
	}
	if !strings.Contains(out, `accesslog_http_requests_total{method="GET",status="503",status_class="5xx",vhost="www"} 1`) {
		t.Errorf("the new format is not in force:\n%s", grepLines(out, "accesslog_http_requests_total"))
	}
	if got := testutil.ToFloat64(f.r.ok); got != 1 {
		t.Errorf("last_reload_successful = %v, want 1", got)
	}
}

func TestReloadNewLabelsReplaceOldSeries(t *testing.T) {
	f := newReloadFixture(t, "input:\n  format: combined\n  default_vhost: www\n")
	f.feed(combinedLine)
	f.write("input:\n  format: combined\n  default_vhost: www\nmetrics:\n  labels: [vhost, status_class]\n")
	if err := f.r.Reload(); err != nil {
		t.Fatal(err)
	}
	f.feed(combinedLine)
	got := grepLines(f.exposition(), "accesslog_http_requests_total{")
	if got != `accesslog_http_requests_total{status_class="2xx",vhost="www"} 1` {
		t.Errorf("after a label change want only the new series, got:\n%s", got)
	}
}

func TestReloadFlagsSectionsNeedingRestart(t *testing.T) {
	f := newReloadFixture(t, "kafka:\n  brokers: [127.0.0.1:9092]\n")
	f.write("kafka:\n  brokers: [127.0.0.1:9093]\n")
	if err := f.r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(f.r.restarts); got != 1 {
		t.Errorf("restart_required = %v after a kafka change, want 1", got)
	}
	f.write("kafka:\n  brokers: [127.0.0.1:9092]\n")
	if err := f.r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(f.r.restarts); got != 0 {
		t.Errorf("restart_required = %v once the file matches what runs, want 0", got)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
