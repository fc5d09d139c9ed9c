package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, "", "version")
	if code != 0 || !strings.Contains(out, "accesslog-exporter, version") {
		t.Errorf("version: code %d, output %q", code, out)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	write(t, good, "kafka:\n  brokers: [127.0.0.1:9092]\nmetrics:\n  labels: [vhost, status]\n")
	write(t, bad, "kafka:\n  brokers: [127.0.0.1:9092]\nmetrics:\n  labels: [vhost, stauts]\n")

	code, out, errs := runCmd(t, "", "check-config", good)
	if code != 0 || !strings.Contains(out, "labels: [vhost, status]") {
		t.Errorf("check-config good: code %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = runCmd(t, "", "check-config", bad)
	if want := bad + `:4: metrics.labels[1]: unknown label "stauts"`; code != 1 || !strings.Contains(errs, want) {
		t.Errorf("check-config bad: code %d, stderr %q, want it to contain %q", code, errs, want)
	}
}

func TestReplay(t *testing.T) {
	code, out, errs := runCmd(t, "", "replay", "../../testdata/nginx-main-timed.log")
	if code != 0 {
		t.Fatalf("replay: code %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "accesslog_http_requests_total{") || !strings.Contains(out, "accesslog_exporter_records_total{result=\"parsed\"} 1993") {
		t.Errorf("replay stdout lacks the expected metrics:\n%.2000s", out)
	}
	for _, want := range []string{"replay: 2000 lines, 1993 parsed, 7 failed", "failed by reason:", "first 7 failures:", "nginx-main-timed.log:644: literal_mismatch: byte 0"} {
		if !strings.Contains(errs, want) {
			t.Errorf("replay summary lacks %q:\n%s", want, errs)
		}
	}
}

func TestReplayStdinWithFormatFlag(t *testing.T) {
	line := `10.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "curl/8"` + "\n"
	code, out, errs := runCmd(t, line, "replay", "--log-format", "combined")
	if code != 0 || !strings.Contains(out, `accesslog_http_requests_total{method="GET",status="200",status_class="2xx",vhost="unknown"} 1`) {
		t.Errorf("replay stdin: code %d, stderr %q, stdout:\n%.1500s", code, errs, out)
	}
}

func TestRunNeedsBrokers(t *testing.T) {
	code, _, errs := runCmd(t, "", "--web.listen-address=127.0.0.1:0")
	if code != 1 || !strings.Contains(errs, "no Kafka brokers") {
		t.Errorf("run without brokers: code %d, stderr %q", code, errs)
	}
}

// --roles replaces the file's roles and is validated as the key is.
func TestRolesFlag(t *testing.T) {
	code, _, errs := runCmd(t, "", "--kafka.brokers=127.0.0.1:1", "--roles=logs", "--web.listen-address=127.0.0.1:0")
	if code != 1 || !strings.Contains(errs, `roles[0]: "logs" needs loki.url`) {
		t.Errorf("--roles=logs without loki.url: code %d, stderr %q", code, errs)
	}
	code, _, errs = runCmd(t, "", "--kafka.brokers=127.0.0.1:1", "--roles=metrics,traces", "--web.listen-address=127.0.0.1:0")
	if code != 1 || !strings.Contains(errs, `roles[1]: want "metrics" or "logs", got "traces"`) {
		t.Errorf("--roles=metrics,traces: code %d, stderr %q", code, errs)
	}
}

func TestBadFlag(t *testing.T) {
	code, _, errs := runCmd(t, "", "--no-such-flag")
	if code != 2 || !strings.Contains(errs, "unknown long flag") {
		t.Errorf("bad flag: code %d, stderr %q", code, errs)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// check-config compiles every log format as run and replay do, and says the
// same file:line: field (issue 13, defect 4).
func TestCheckConfigCompilesFormats(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"lone dollar", "input:\n  format: \"$\"\n", `:2: input.format: accesslog: format "default": byte 1: invalid variable name after '$'`},
		{"no variable", "input:\n  format: \"plain text\"\n", `:2: input.format: accesslog: format "default": no variables`},
		{"named format", "input:\n  formats:\n    - name: alt\n      format: \"$\"\n", `:4: input.formats[0].format: accesslog: format "alt": byte 1: invalid variable name after '$'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yml")
			write(t, file, tc.yaml)
			want := file + tc.want
			for _, args := range [][]string{
				{"check-config", file},
				{"--config.file", file, "replay"},
			} {
				code, out, errs := runCmd(t, "", args...)
				if code != 1 || !strings.Contains(errs, want) {
					t.Errorf("%v: code %d, stderr %q, stdout %.200q; want code 1 and stderr containing %q", args, code, errs, out, want)
				}
			}
		})
	}
}

// check-config hides credentials written into URLs (issue 13, defect 5).
func TestCheckConfigRedactsURLs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yml")
	write(t, file, "loki:\n  url: http://user:SECRET@loki:3100\npush:\n  url: http://u:SECRET@vm:8428/api/v1/import/prometheus\ntracing:\n  endpoint: http://SECRET@otel:4318\n")
	code, out, errs := runCmd(t, "", "check-config", file)
	if code != 0 || strings.Contains(out+errs, "SECRET") || !strings.Contains(out, "url: http://***@loki:3100") {
		t.Errorf("check-config: code %d, stderr %q, stdout:\n%s", code, errs, out)
	}
}
