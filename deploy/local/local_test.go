package local

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
)

// The local nginx must log exactly what the exporter's main_timed preset
// parses, or scenario counts would fail for the wrong reason.
func TestNginxLogFormatIsMainTimed(t *testing.T) {
	b, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)log_format\s+main_timed\s+(.*?);`).FindSubmatch(b)
	if m == nil {
		t.Fatal("nginx.conf has no log_format main_timed")
	}
	var got strings.Builder
	for _, q := range regexp.MustCompile(`'([^']*)'`).FindAllSubmatch(m[1], -1) {
		got.Write(q[1])
	}
	if got.String() != accesslog.FormatMainTimed {
		t.Errorf("log_format main_timed is\n%q\nwant accesslog.FormatMainTimed\n%q", got.String(), accesslog.FormatMainTimed)
	}
	if !strings.Contains(string(b), "access_log logs/access.log main_timed;") {
		t.Error("access.log is not written with main_timed")
	}
}
