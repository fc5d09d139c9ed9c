package loki

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki/lokitest"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testenv"
)

// TestVictoriaLogsAcceptsThePush covers users of VictoriaLogs, which takes
// Loki's push API at /insert/loki/api/v1/push: every line arrives, with
// its stream labels and timestamp.
func TestVictoriaLogsAcceptsThePush(t *testing.T) {
	bin := testenv.Binary(t, "ACCESSLOG_VICTORIALOGS_BIN", "victorialogs")
	dir := t.TempDir()
	vl, err := lokitest.StartVictoriaLogs(bin, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer vl.Stop()

	for _, meta := range []bool{false, true} {
		t.Run(fmt.Sprintf("structured_metadata=%v", meta), func(t *testing.T) {
			pushToVictoriaLogs(t, vl.URL, meta)
		})
	}
}

// pushToVictoriaLogs pushes 2000 lines through the client (protobuf written
// by encode.go, s2's snappy block) and reads them back with LogsQL.
func pushToVictoriaLogs(t *testing.T, base string, meta bool) {
	job := fmt.Sprintf("vl-test-%v", meta)
	cfg := testConfig(base + "/insert/loki/api/v1/push")
	cfg.Labels.Job = job
	cfg.StructuredMetadata = meta
	c, reg := newClient(t, cfg)
	ack := &countAck{}
	const n = 2000
	addLines(c.NewAppender(), ack, 0, n, "web-1")
	if err := c.wait(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("not acknowledged: %v", err)
	}
	if ack.held() || counterValue(t, reg, "accesslog_exporter_loki_entries_sent_total", "", "") != n {
		t.Fatalf("source held %v, sent %v", ack.held(), counterValue(t, reg, "accesslog_exporter_loki_entries_sent_total", "", ""))
	}

	// VictoriaLogs makes new data searchable within about a second.
	var rows []map[string]string
	testbed.WaitFor(t, fmt.Sprintf("%d lines searchable in VictoriaLogs", n), 15*time.Second, func() bool {
		rows = queryVL(t, base, `{job="`+job+`"}`)
		return len(rows) >= n
	})
	if len(rows) != n {
		t.Fatalf("VictoriaLogs holds %d lines, want %d", len(rows), n)
	}
	for _, r := range rows {
		var i int
		if _, err := fmt.Sscanf(r["_msg"], "line %d", &i); err != nil {
			t.Fatalf("unexpected line %q", r["_msg"])
		}
		ts, err := time.Parse(time.RFC3339Nano, r["_time"])
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Unix(1700000000+int64(i), int64(i)); !ts.Equal(want) {
			t.Fatalf("line %d at %v, want %v", i, ts, want)
		}
		if r["host"] != "web-1" || r["parse_status"] != "parsed" {
			t.Fatalf("labels not kept: %v", r)
		}
		if meta && (r["offset"] != strconv.Itoa(i) || r["partition"] != "3" || r["topic"] != "nginxlog") {
			t.Fatalf("structured metadata not kept for line %d: %v", i, r)
		}
	}
}

func queryVL(t *testing.T, base, q string) []map[string]string {
	t.Helper()
	resp, err := http.Get(base + "/select/logsql/query?" + url.Values{"query": {q}, "limit": {"100000"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("LogsQL query: %s", resp.Status)
	}
	var out []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("LogsQL row %q: %v", sc.Text(), err)
		}
		out = append(out, row)
	}
	return out
}
