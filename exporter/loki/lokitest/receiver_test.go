package lokitest_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki/lokitest"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

func protoBody(t *testing.T, streams ...push.Stream) []byte {
	t.Helper()
	raw, err := (&push.PushRequest{Streams: streams}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

type answer struct {
	status     int
	body       string
	retryAfter string
	err        error
}

func post(t *testing.T, r *lokitest.Receiver, timeout time.Duration, contentType string, body []byte, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.PushURL(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// A fresh connection per request: a kept-alive one would hide Refuse.
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: strings.TrimSpace(string(b)), retryAfter: resp.Header.Get("Retry-After")}
}

func stream(labels string, ts time.Time, lines ...string) push.Stream {
	s := push.Stream{Labels: labels}
	for i, l := range lines {
		s.Entries = append(s.Entries, push.Entry{Timestamp: ts.Add(time.Duration(i)), Line: l})
	}
	return s
}

func TestReceiverStoresProtobufAndJSON(t *testing.T) {
	r := lokitest.NewReceiver(t)
	now := time.Now().Truncate(time.Second)
	s := stream(`{job="a", host="h"}`, now, "one", "two")
	s.Entries[0].StructuredMetadata = push.LabelsAdapter{{Name: "offset", Value: "7"}}
	var errs []string
	if a := post(t, r, 5*time.Second, "application/x-protobuf", protoBody(t, s)); a.err != nil || a.status != http.StatusNoContent {
		errs = append(errs, fmt.Sprintf("protobuf push: %d %q %v, want 204", a.status, a.body, a.err))
	}
	js := fmt.Sprintf(`{"streams":[{"stream":{"job":"a","host":"h"},"values":[["%d","three"],["%d","four",{"trace_id":"abc"}]]}]}`,
		now.Add(time.Second).UnixNano(), now.Add(2*time.Second).UnixNano())
	if a := post(t, r, 5*time.Second, "application/json", []byte(js)); a.status != http.StatusNoContent {
		errs = append(errs, fmt.Sprintf("JSON push: %d %q %v, want 204", a.status, a.body, a.err))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	fmt.Fprintf(zw, `{"streams":[{"stream":{"job":"b"},"values":[["%d","five"]]}]}`, now.UnixNano())
	zw.Close()
	if a := post(t, r, 5*time.Second, "application/json", gz.Bytes(), "Content-Encoding", "gzip"); a.status != http.StatusNoContent {
		errs = append(errs, fmt.Sprintf("gzip JSON push: %d %q %v, want 204", a.status, a.body, a.err))
	}
	got := r.Entries()
	var lines []string
	for _, e := range got {
		lines = append(lines, e.Line)
	}
	if strings.Join(lines, ",") != "one,two,three,four,five" {
		errs = append(errs, fmt.Sprintf("stored lines %v", lines))
	}
	if len(got) == 5 {
		if got[0].Labels != `{job="a", host="h"}` || !got[0].Time.Equal(now) || fmt.Sprint(got[0].Metadata) != "[{offset 7}]" {
			errs = append(errs, fmt.Sprintf("first entry %+v", got[0]))
		}
		// JSON labels are written sorted, as Loki's own label parser does.
		if got[2].Labels != `{host="h", job="a"}` || fmt.Sprint(got[3].Metadata) != "[{trace_id abc}]" {
			errs = append(errs, fmt.Sprintf("JSON entries %+v %+v", got[2], got[3]))
		}
	}
	ss := r.Streams()
	if len(ss) != 3 || ss[0].Labels["job"] != "a" || len(r.Stream(`{job="b"}`)) != 1 {
		errs = append(errs, fmt.Sprintf("streams %+v", ss))
	}
	if n := lokitest.Count(ss, "job"); n["a"] != 4 || n["b"] != 1 || lokitest.Total(ss) != 5 {
		errs = append(errs, fmt.Sprintf("count by job %v, total %d", n, lokitest.Total(ss)))
	}
	if reqs := r.Requests(); len(reqs) != 3 || reqs[0].Entries != 2 || reqs[0].Stored != 2 || reqs[0].Status != 204 {
		errs = append(errs, fmt.Sprintf("requests %+v", reqs))
	}
	report(t, errs)
}

func report(t *testing.T, errs []string) {
	t.Helper()
	if len(errs) > 0 {
		t.Error(strings.Join(errs, "\n"))
	}
}

// Loki's validation: the valid entries of a push are stored, the answer is
// 400 with the reason of the refused ones.
func TestReceiverValidatesAsLoki(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		name   string
		limits lokitest.Limits
		push   []push.Stream
		status int
		reason string
		stored int
	}{
		{"line too long", lokitest.LokiDefaults(),
			[]push.Stream{stream(`{job="a"}`, now, "ok", strings.Repeat("x", 256000+1), "ok2")},
			400, `max entry size 256000 bytes exceeded for stream {job="a"} while adding an entry with length 256001 bytes`, 2},
		{"too old", lokitest.LokiDefaults(),
			[]push.Stream{stream(`{job="a"}`, now.Add(-8*24*time.Hour), "old")},
			400, `entry for stream {job="a"} has timestamp too old: `, 0},
		{"too new", lokitest.LokiDefaults(),
			[]push.Stream{stream(`{job="a"}`, now.Add(time.Hour), "new")},
			400, `entry for stream {job="a"} has timestamp too new: ` + now.Add(time.Hour).Format(time.RFC3339), 0},
		{"too far behind", lokitest.LokiDefaults(),
			[]push.Stream{{Labels: `{job="a"}`, Entries: []push.Entry{{Timestamp: now, Line: "x"}, {Timestamp: now.Add(-2 * time.Hour), Line: "y"}}}},
			400, "entry too far behind, entry timestamp is: " + now.Add(-2*time.Hour).Format(time.RFC3339), 1},
		{"stream limit", lokitest.Limits{MaxStreams: 1},
			[]push.Stream{stream(`{job="a"}`, now, "x"), stream(`{job="b"}`, now, "y")},
			429, `maximum active stream limit exceeded when trying to create stream {job="b"}`, 1},
		{"bad labels", lokitest.LokiDefaults(),
			[]push.Stream{stream(`{job=a}`, now, "x")},
			400, `error parsing labels {job=a} with error`, 0},
		{"body too large", lokitest.Limits{MaxBodyBytes: 100},
			[]push.Stream{stream(`{job="a"}`, now, strings.Repeat("x", 200))}, // small once compressed
			413, "received message larger than max", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := lokitest.NewReceiver(t, lokitest.WithLimits(tc.limits))
			a := post(t, r, 5*time.Second, "application/x-protobuf", protoBody(t, tc.push...))
			if a.status != tc.status || !strings.Contains(a.body, tc.reason) || r.Len() != tc.stored {
				t.Errorf("answer %d %q (%v), %d stored; want %d containing %q, %d stored", a.status, a.body, a.err, r.Len(), tc.status, tc.reason, tc.stored)
			}
		})
	}
}

func TestReceiverStatusFaults(t *testing.T) {
	r := lokitest.NewReceiver(t)
	body := protoBody(t, stream(`{job="a"}`, time.Now(), "x"))
	r.SetFault(lokitest.Status(429).RetryAfter("2").Times(2))
	var errs []string
	for i := range 2 {
		a := post(t, r, 5*time.Second, "application/x-protobuf", body)
		if a.status != 429 || a.retryAfter != "2" || !strings.HasPrefix(a.body, "ingestion rate limit exceeded for user") {
			errs = append(errs, fmt.Sprintf("request %d: %d %q Retry-After %q", i, a.status, a.body, a.retryAfter))
		}
	}
	if a := post(t, r, 5*time.Second, "application/x-protobuf", body); a.status != 204 {
		errs = append(errs, fmt.Sprintf("after Times(2): %d, want 204", a.status))
	}
	r.SetFault(lokitest.Status(503))
	if a := post(t, r, 5*time.Second, "application/x-protobuf", body); a.status != 503 {
		errs = append(errs, fmt.Sprintf("Status(503): %d", a.status))
	}
	if r.Len() != 1 {
		errs = append(errs, fmt.Sprintf("%d stored, want only the accepted push", r.Len()))
	}
	report(t, errs)
}

func TestReceiverConnectionFaults(t *testing.T) {
	r := lokitest.NewReceiver(t)
	body := protoBody(t, stream(`{job="a"}`, time.Now(), "x", "y"))
	var errs []string

	r.SetFault(lokitest.Refuse())
	if a := post(t, r, 5*time.Second, "application/x-protobuf", body); !errors.Is(a.err, syscall.ECONNREFUSED) {
		errs = append(errs, fmt.Sprintf("Refuse: %d %v, want connection refused", a.status, a.err))
	}
	r.SetFault(lokitest.NoFault)
	if a := post(t, r, 5*time.Second, "application/x-protobuf", body); a.status != 204 {
		errs = append(errs, fmt.Sprintf("after Refuse: %d %v, want 204 on the same address", a.status, a.err))
	}
	stored := r.Len()

	r.SetFault(lokitest.CutBody())
	if a := post(t, r, 5*time.Second, "application/x-protobuf", body); a.err == nil {
		errs = append(errs, fmt.Sprintf("CutBody: answered %d", a.status))
	}
	if r.Len() != stored {
		errs = append(errs, "CutBody stored entries")
	}

	r.SetFault(lokitest.Delay(time.Second))
	if a := post(t, r, 100*time.Millisecond, "application/x-protobuf", body); a.err == nil {
		errs = append(errs, fmt.Sprintf("Delay past the timeout: answered %d", a.status))
	}
	// The handler sees the client go; poll until it has given up.
	testbed.WaitFor(t, "the handler to see the client go", 5*time.Second, func() bool { return r.RequestCount() >= 3 })
	if r.Len() != stored {
		errs = append(errs, "a push whose client gave up during Delay was stored")
	}
	r.SetFault(lokitest.Delay(50 * time.Millisecond))
	if a := post(t, r, 5*time.Second, "application/x-protobuf", body); a.status != 204 || r.Len() != stored+2 {
		errs = append(errs, fmt.Sprintf("Delay within the timeout: %d %v, %d stored", a.status, a.err, r.Len()))
	}
	stored = r.Len()

	r.SetFault(lokitest.LoseAnswer())
	if a := post(t, r, 5*time.Second, "application/x-protobuf", body); a.err == nil {
		errs = append(errs, fmt.Sprintf("LoseAnswer: answered %d", a.status))
	}
	if r.Len() != stored+2 {
		errs = append(errs, fmt.Sprintf("LoseAnswer: %d stored, want %d (stored, answer lost)", r.Len(), stored+2))
	}
	// Every push carried the same two entries; three pushes were stored.
	if r.Duplicates() != 4 || r.DistinctLines() != 2 || r.Len() != 6 {
		errs = append(errs, fmt.Sprintf("duplicates %d, distinct %d, stored %d; want 4, 2, 6", r.Duplicates(), r.DistinctLines(), r.Len()))
	}
	if m := r.Missing([][]byte{[]byte("x"), []byte("z")}); len(m) != 1 || string(m[0]) != "z" {
		errs = append(errs, fmt.Sprintf("missing %q, want [z]", m))
	}
	report(t, errs)
}

func TestParseLabels(t *testing.T) {
	for in, want := range map[string]string{
		`{job="a", host="h\"x"}`: `map[host:h"x job:a]`,
		`{ a="1",b="2" }`:        `map[a:1 b:2]`,
		`{}`:                     "error",
		`{1a="x"}`:               "error",
		`{a="x" b="y"}`:          "error",
		`{a="x", a="y"}`:         "error",
		`job="a"`:                "error",
	} {
		m, err := lokitest.ParseLabels(in)
		got := fmt.Sprint(m)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("ParseLabels(%s) = %s (%v), want %s", in, got, err, want)
		}
	}
}
