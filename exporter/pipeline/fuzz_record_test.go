package pipeline

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafka"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki"
)

// The whole per-record path under arbitrary bytes: a Kafka record value goes
// through the processor the consumer runs (envelope decode, parse, metrics
// with exemplars and every optional label, the hand-over to Loki), the
// appender's batch is pushed to an in-process endpoint that decodes the body
// as Loki does (snappy, then the push protobuf), and the registry is gathered
// and encoded in every exposition format. Nothing may panic, the pushed line
// must be the record's line byte for byte, the stream labels must be what
// Loki accepts, and every exposition must encode.

// crashLine is a record that once crashed the exporter (issue 13): a
// request or trace id that client_golang refuses as an exemplar.
type crashLine struct {
	name    string
	value   []byte
	json    bool    // the default format is JSON
	invalid float64 // exemplar ids counted as invalid
}

func crashLines() []crashLine {
	mainTimed := func(id string) []byte {
		return []byte(`198.51.100.30 - - [10/Oct/2025:13:55:36 +0000] "GET /p HTTP/1.1" 200 5 "-" "UA" "-" shop.example.com 0.048 0.047 0.001 0.046 200 10.0.1.11:8080 ` + id)
	}
	jsonLine := func(id, traceparent string) []byte {
		return []byte(`{"time":"2025-10-10T13:55:36+02:00","remote_addr":"192.0.2.1","remote_user":"","request":"GET / HTTP/1.1","status":"503","body_bytes_sent":"612","bytes_sent":"850","request_time":"0.004","http_referer":"","http_user_agent":"curl/8.5.0","http_x_forwarded_for":"","host":"shop.example.com","upstream_addr":"10.0.0.11:8080","upstream_status":"503","upstream_response_time":"0.003","upstream_connect_time":"0.000","upstream_header_time":"0.003","request_id":"` + id + `","traceparent":"` + traceparent + `"}`)
	}
	// envelope wraps line as Filebeat does, but keeps bytes that are not
	// UTF-8 as they are, as a broken shipper might.
	envelope := func(line []byte) []byte {
		msg := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(string(line))
		return []byte(`{"@timestamp":"2025-10-10T11:55:36.789Z","log":{"file":{"path":"/var/log/nginx/access.log"}},"message":"` + msg + `","host":{"name":"web-1"}}`)
	}
	long := strings.Repeat("r", 119)
	return []crashLine{
		{name: "main_timed request_id of 119 runes", value: mainTimed(long), invalid: 1},
		{name: "main_timed request_id of 400 runes", value: mainTimed(strings.Repeat("r", 400)), invalid: 1},
		{name: "main_timed request_id not UTF-8", value: mainTimed("ab\xffcd"), invalid: 1},
		{name: "main_timed request_id cut UTF-8", value: mainTimed("ab\xe2\x82"), invalid: 1},
		{name: "json request_id of 130 runes", value: jsonLine(strings.Repeat("a", 130), ""), json: true, invalid: 1},
		{name: "json request_id not UTF-8", value: jsonLine("ab\xffcd", ""), json: true, invalid: 1},
		{name: "json traceparent of 200 runes, not a trace id", value: jsonLine("x", "00-"+strings.Repeat("f", 200)+"-00f067aa0ba902b7-01"), json: true},
		{name: "envelope of request_id 119 runes", value: envelope(mainTimed(long)), invalid: 1},
		{name: "envelope of request_id not UTF-8", value: envelope(mainTimed("\xc3\x28")), invalid: 1},
	}
}

// recordPipeline is the pipeline of one configuration: fresh metrics per
// record (so that every record gets an exemplar and a failure reproduces
// from its input alone) and one Loki client and appender shared by all.
type recordPipeline struct {
	cfg config.Config
	lc  *loki.Client
	app *loki.Appender

	mu     sync.Mutex
	pushes chan *push.PushRequest
	bad    chan string // a push body Loki could not have decoded
	offset int64
}

var (
	recordPipelines     [2]*recordPipeline // raw main_timed, JSON
	recordPipelinesOnce sync.Once
	recordPipelinesErr  error
)

// fuzzConfig is the configuration under fuzzing: every optional metric
// label, nginx compat, exemplars, a small series budget (so the overflow
// path runs), every Loki label and structured metadata.
func fuzzConfig(url string, json bool) config.Config {
	cfg := config.Default()
	if json {
		cfg.Input.Format, cfg.Input.Escape, cfg.Input.JSON = "", "json", true
	}
	cfg.Input.Formats = []config.NamedFormat{{Name: "nginx_json", JSON: true, Escape: "json"}}
	cfg.Input.Rules = []config.FormatRule{{Field: "log.file.path", Match: `json`, Format: "nginx_json"}}
	cfg.Metrics.Labels = []string{"vhost", "method", "status", "status_class", "route", "upstream", "host", "var_request_id", "var_http_user_agent"}
	cfg.Metrics.MaxSeries = 4
	cfg.Metrics.NginxCompat = true
	cfg.Metrics.Exemplars = true
	cfg.Loki.URL = url
	cfg.Loki.Labels.Job = "fuzz"
	cfg.Loki.Labels.Host, cfg.Loki.Labels.VHost, cfg.Loki.Labels.ParseStatus = true, true, true
	cfg.Loki.Labels.MaxStreams = 16
	cfg.Loki.StructuredMetadata = true
	cfg.Loki.Batch.MaxWait = time.Hour // pushed by Flush, once per record
	cfg.Loki.Retry.MaxRetries = 1
	return cfg
}

func recordPipelinesFor(tb testing.TB) [2]*recordPipeline {
	recordPipelinesOnce.Do(func() {
		for i := range recordPipelines {
			p := &recordPipeline{pushes: make(chan *push.PushRequest, 1), bad: make(chan string, 1)}
			srv := httptest.NewServer(http.HandlerFunc(p.serve))
			p.cfg = fuzzConfig(srv.URL, i == 1)
			lc, err := loki.New(p.cfg.Loki, loki.Options{Registerer: prometheus.NewRegistry()})
			if err != nil {
				recordPipelinesErr = err
				return
			}
			lc.Start()
			p.lc, p.app = lc, lc.NewAppender()
			recordPipelines[i] = p
		}
	})
	if recordPipelinesErr != nil {
		tb.Fatal(recordPipelinesErr)
	}
	return recordPipelines
}

// serve decodes a push as Loki does and hands it to the record under test.
func (p *recordPipeline) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req push.PushRequest
	if err == nil {
		var raw []byte
		if raw, err = snappy.Decode(nil, body); err == nil {
			err = req.Unmarshal(raw)
		}
	}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		p.bad <- err.Error()
		return
	}
	w.WriteHeader(http.StatusNoContent)
	p.pushes <- &req
}

// check runs value through the path and returns every way it went wrong.
func (p *recordPipeline) check(value []byte) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []string
	reg := prometheus.NewPedanticRegistry()
	l, err := newLive(&p.cfg, reg)
	if err != nil {
		return []string{"newLive: " + err.Error()}
	}
	self, err := newSelfMetrics(reg)
	if err != nil {
		return []string{"newSelfMetrics: " + err.Error()}
	}
	// The two members a record meets: the metrics member counts it, the
	// log member forwards it. Either contains a panic and logs it; here a
	// contained panic is a failure like any other.
	var panics bytes.Buffer
	log := slog.New(slog.NewTextHandler(&panics, &slog.HandlerOptions{Level: slog.LevelError}))
	p.offset++
	rec := &kgo.Record{Topic: "nginxlog", Value: value, Offset: p.offset, Timestamp: time.Unix(1760097336, 0)}
	share, err := newShared(reg)
	if err != nil {
		return []string{"newShared: " + err.Error()}
	}
	var v sharedView
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// The log member asks first (it finds nothing yet): the metrics member
	// writes the window only for a log member near its offsets.
	share.take(kafka.NewBatch("nginxlog", 0, []*kgo.Record{rec}), nil, &v, timer)
	counter := newProcessor(l, self, nil, nil, share)
	counter.log = log
	counter.Process(kafka.NewBatch("nginxlog", 0, []*kgo.Record{rec}))
	forwarder := newProcessor(l, self, nil, p.app, nil)
	forwarder.log = log
	forwarder.Process(kafka.NewBatch("nginxlog", 0, []*kgo.Record{rec}))
	if panics.Len() > 0 {
		errs = append(errs, "contained panic: "+panics.String())
	}
	// The log member of the same process would have taken the counter's
	// decode: it must be the line the forwarder decoded for itself.
	share.take(kafka.NewBatch("nginxlog", 0, []*kgo.Record{rec}), counter.h.rules, &v, timer)
	var shared, own loki.Line
	logLine(&forwarder.h.rec, rec, forwarder.line.Unparsed, &own)
	if !v.line(0, rec, &shared) {
		// Only a line some part of which no position reaches is left to
		// the log member.
		if _, ok := entryOf(rec, &counter.line, &counter.h.rec); ok {
			errs = append(errs, "the counter's decode was not shared")
		}
	} else if d := lineDiff(&shared, &own); d != "" {
		errs = append(errs, "shared decode differs: "+d)
	}
	// What forward handed to Loki, read back before the next record.
	want := forwarder.h.rec.Line
	if want == nil && !forwarder.h.rec.Enveloped {
		want = value
	}

	p.lc.Flush()
	select {
	case req := <-p.pushes:
		errs = append(errs, checkPush(req, want)...)
	case msg := <-p.bad:
		errs = append(errs, "push body does not decode: "+msg)
	case <-time.After(30 * time.Second):
		errs = append(errs, "no push within 30s")
	}

	mfs, err := reg.Gather()
	if err != nil {
		errs = append(errs, "gather: "+err.Error())
	}
	for _, f := range []expfmt.Format{
		expfmt.NewFormat(expfmt.TypeTextPlain),
		expfmt.NewFormat(expfmt.TypeOpenMetrics),
		expfmt.NewFormat(expfmt.TypeProtoDelim),
	} {
		enc := expfmt.NewEncoder(io.Discard, f)
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				errs = append(errs, fmt.Sprintf("encode %s as %s: %v", mf.GetName(), f, err))
			}
		}
	}
	return errs
}

// checkPush: one entry, the line itself, stream labels Loki can parse.
func checkPush(req *push.PushRequest, want []byte) []string {
	var errs []string
	n := 0
	for _, s := range req.Streams {
		if err := validStreamLabels(s.Labels); err != nil {
			errs = append(errs, fmt.Sprintf("stream labels %s: %v", s.Labels, err))
		}
		for _, e := range s.Entries {
			n++
			if e.Line != string(want) {
				errs = append(errs, fmt.Sprintf("pushed line %q, want %q", e.Line, want))
			}
			for _, m := range e.StructuredMetadata {
				if !utf8.ValidString(m.Value) {
					errs = append(errs, fmt.Sprintf("structured metadata %s=%q is not UTF-8", m.Name, m.Value))
				}
			}
		}
	}
	if n != 1 {
		errs = append(errs, fmt.Sprintf("push carried %d entries, want 1", n))
	}
	return errs
}

// validStreamLabels checks the {name="value", ...} form Loki parses: each
// value a Go-quoted string that unquotes to valid UTF-8.
func validStreamLabels(s string) error {
	rest, ok := strings.CutPrefix(s, "{")
	if !ok || !strings.HasSuffix(rest, "}") {
		return fmt.Errorf("not in braces")
	}
	rest = strings.TrimSuffix(rest, "}")
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		if !ok || name == "" {
			return fmt.Errorf("no name=value at %q", rest)
		}
		q, err := strconv.QuotedPrefix(after)
		if err != nil {
			return fmt.Errorf("value of %s: %v", name, err)
		}
		v, _ := strconv.Unquote(q)
		if !utf8.ValidString(v) {
			return fmt.Errorf("value of %s is not UTF-8: %q", name, v)
		}
		rest = strings.TrimPrefix(after[len(q):], ", ")
	}
	return nil
}

// recordSeed is one seed input: a record value and whether the JSON
// pipeline reads it.
type recordSeed struct {
	value []byte
	json  bool
}

// recordSeeds are the crash reproductions and a sample of every testdata
// file of real lines: few enough that `make test`'s short run gets past its
// baseline on a loaded machine.
func recordSeeds(tb testing.TB) []recordSeed {
	var seeds []recordSeed
	for _, c := range crashLines() {
		seeds = append(seeds, recordSeed{c.value, c.json})
	}
	for _, file := range []struct {
		name  string
		json  bool
		every int
	}{
		{"../../testdata/nginx-main-timed.log", false, 400},
		{"../accesslog/testdata/nginx_main_timed.log", false, 5},
		{"../accesslog/testdata/nginx_json.log", true, 5},
		{"../accesslog/testdata/filebeat.ndjson", false, 5},
	} {
		f, err := os.Open(file.name)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for i := 0; sc.Scan(); i++ {
			if i%file.every == 0 {
				seeds = append(seeds, recordSeed{bytes.Clone(sc.Bytes()), file.json})
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			tb.Fatal(err)
		}
	}
	return seeds
}

func FuzzRecord(f *testing.F) {
	for _, s := range recordSeeds(f) {
		f.Add(s.value, s.json)
	}
	f.Fuzz(func(t *testing.T, value []byte, json bool) {
		p := recordPipelinesFor(t)[0]
		if json {
			p = recordPipelinesFor(t)[1]
		}
		for _, e := range p.check(value) {
			t.Error(e)
		}
	})
}

// The issue 13 reproductions, through the record path and through replay
// (what `accesslog-exporter replay` runs): each line is counted once, its
// exemplar id cut or dropped and counted by reason.
func TestRecordCrashReproductions(t *testing.T) {
	ps := recordPipelinesFor(t)
	for _, c := range crashLines() {
		t.Run(c.name, func(t *testing.T) {
			for _, p := range ps {
				for _, e := range p.check(c.value) {
					t.Error(e)
				}
			}
			cfg := config.Default()
			if c.json {
				cfg.Input.Format, cfg.Input.Escape, cfg.Input.JSON = "", "json", true
			}
			var out bytes.Buffer
			sum, err := Replay(&cfg, nil, bytes.NewReader(append(c.value, '\n')), &out)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Parsed != 1 || sum.Failed != 0 {
				t.Errorf("replay: %d parsed, %d failed (%v), want 1 parsed", sum.Parsed, sum.Failed, sum.Failures)
			}
			s := parse(t, out.Bytes())
			if got := s.sum("accesslog_http_requests_total", nil); got != 1 {
				t.Errorf("requests counted %v, want 1", got)
			}
			if got := s.sum("accesslog_exporter_exemplars_invalid_total", nil); got != c.invalid {
				t.Errorf("exemplars_invalid_total = %v, want %v", got, c.invalid)
			}
		})
	}
}
