package kafkahealth

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"google.golang.org/protobuf/proto"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
)

// A health cluster with every kind of series: topics, lagging and
// uncommitted partitions, a group, and the poller's own.
func newExpositionHealth(t *testing.T) *Poller {
	hc := newHealthCluster(t)
	hc.createTopic(t, "nginxlog", 3, 3, nil)
	hc.createTopic(t, "other", 2, 1, nil)
	hc.produce(t, "nginxlog", []int32{0, 1, 2}, 4, time.Now().Add(-time.Minute))
	hc.commit(t, "edge", "nginxlog", 1, 4)
	hcfg := testHealthConfig()
	hcfg.ExpectedBrokers = 3
	h := newTestHealth(t, hc, hcfg)
	if !h.PollOnce(context.Background()) {
		t.Fatal("poll failed")
	}
	return h
}

// The old path: Poller as a collector on the registry, through promhttp,
// as the server served it before the cluster series were pre-encoded.
func collectorHandler(h *Poller) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	server.New(server.Config{}, reg, nil, nil) // the server's own families, as on the new path
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, Registry: reg, EnableOpenMetrics: true,
	}))
}

// The new path, as pipeline.Run wires it.
func expositionHandler(h *Poller) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Self())
	return server.New(server.Config{Expositions: []server.Exposition{h}}, reg, nil, nil).Handler()
}

// body returns the response's body, decompressed when it says gzip (with
// Go's reader, which is Prometheus's: a stream of gzip members reads as
// one).
func body(t *testing.T, h http.Handler, accept, enc string) (contentType string, b []byte) {
	t.Helper()
	rec := get(t, h, accept, enc)
	b = rec.Body.Bytes()
	gzipped := rec.Header().Get("Content-Encoding") == "gzip"
	if gzipped != (enc == "gzip") {
		t.Fatalf("Accept-Encoding %q answered with Content-Encoding %q", enc, rec.Header().Get("Content-Encoding"))
	}
	if gzipped {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return rec.Header().Get("Content-Type"), b
}

// families parses a body in its format: the text parser for text, the
// delimited decoder for protobuf, and Prometheus's own OpenMetrics parser
// (which insists on one "# EOF" at the very end) for OpenMetrics.
func families(t *testing.T, contentType string, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	out := map[string]*dto.MetricFamily{}
	switch expfmt.Format(contentType).FormatType() {
	case expfmt.TypeOpenMetrics:
		if n := bytes.Count(b, []byte("# EOF\n")); n != 1 || !bytes.HasSuffix(b, []byte("\n# EOF\n")) {
			t.Fatalf("OpenMetrics body has %d '# EOF' lines, want exactly one as the last line", n)
		}
		p := textparse.NewOpenMetricsParser(b, labels.NewSymbolTable())
		for {
			if _, err := p.Next(); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("OpenMetrics body does not parse: %v", err)
			}
		}
		// Its families are checked through the text it equals byte for
		// byte (see the caller); OpenMetrics only checks the syntax.
		return nil
	case expfmt.TypeTextPlain:
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("text body does not parse: %v", err)
		}
		return mfs
	case expfmt.TypeProtoDelim:
		dec := expfmt.NewDecoder(bytes.NewReader(b), expfmt.Format(contentType))
		for {
			mf := &dto.MetricFamily{}
			if err := dec.Decode(mf); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("protobuf body does not parse: %v", err)
			}
			out[mf.GetName()] = mf
		}
		return out
	}
	t.Fatalf("unexpected Content-Type %q", contentType)
	return nil
}

// The pre-encoded cluster series are exactly what the collector path
// serves, in every format Prometheus negotiates, with and without gzip:
// the same bytes once decompressed (the families are written in the same
// order), hence the same families, samples, HELP and TYPE; both on the
// first scrape of a format (encoded then) and after the next poll (encoded
// by the poll).
func TestHealthExpositionEqualsCollector(t *testing.T) {
	h := newExpositionHealth(t)
	for _, c := range scrapeFormats {
		t.Run(c.name, func(t *testing.T) {
			oldH, newH := collectorHandler(h), expositionHandler(h)
			for _, when := range []string{"first scrape", "after a poll"} {
				if when == "after a poll" {
					if !h.PollOnce(context.Background()) {
						t.Fatal("poll failed")
					}
				}
				oldType, oldBody := body(t, oldH, c.accept, c.enc)
				newType, newBody := body(t, newH, c.accept, c.enc)
				if newType != oldType {
					t.Errorf("%s: Content-Type %q, promhttp's %q", when, newType, oldType)
				}
				// Protobuf carries the creation time of counters, and
				// each handler has its own promhttp_* counters: the
				// families are compared below without it.
				isProto := expfmt.Format(newType).FormatType() == expfmt.TypeProtoDelim
				if !isProto && !bytes.Equal(newBody, oldBody) {
					t.Errorf("%s: body differs from the collector path's:\n%s", when, firstDiff(oldBody, newBody))
				}
				fams := families(t, newType, newBody)
				oldFams := families(t, oldType, oldBody)
				if fams == nil {
					continue
				}
				if _, ok := fams["kafka_topic_partitions"]; !ok {
					t.Errorf("%s: kafka_topic_partitions missing", when)
				}
				if len(fams) != len(oldFams) {
					t.Errorf("%s: %d families, the collector path %d", when, len(fams), len(oldFams))
				}
				for name, mf := range oldFams {
					if strings.HasPrefix(name, "promhttp_") || name == "accesslog_exporter_http_rejected_total" { // the servers' own counters
						for _, m := range append(mf.Metric, fams[name].GetMetric()...) {
							if m.Counter != nil {
								m.Counter.CreatedTimestamp = nil
							}
						}
					}
					if !proto.Equal(mf, fams[name]) {
						t.Errorf("%s: family %s differs:\n got %v\nwant %v", when, name, fams[name], mf)
					}
				}
			}
		})
	}
}

func firstDiff(want, got []byte) string {
	wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := range min(len(wl), len(gl)) {
		if wl[i] != gl[i] {
			return "line " + strconv.Itoa(i+1) + ":\n want " + wl[i] + "\n  got " + gl[i]
		}
	}
	return "lengths " + strconv.Itoa(len(wl)) + " and " + strconv.Itoa(len(gl)) + " lines"
}

// Withdrawn series (stale_after failed polls) leave the endpoint with the
// poller's own series only; name[] picks pre-encoded families too.
func TestHealthExpositionFollowsSnapshot(t *testing.T) {
	h := newExpositionHealth(t)
	srv := expositionHandler(h)

	req := func(url string) map[string]*dto.MetricFamily {
		r, _ := http.NewRequest(http.MethodGet, url, nil)
		r.Header.Set("Accept", acceptText)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		return families(t, rec.Header().Get("Content-Type"), rec.Body.Bytes())
	}
	got := req("/metrics?name[]=kafka_topic_partitions&name[]=accesslog_exporter_kafka_up")
	if len(got) != 2 || got["kafka_topic_partitions"] == nil || got["accesslog_exporter_kafka_up"] == nil {
		t.Errorf("name[] filter: got families %v", keys(got))
	}

	h.last.Store(nil) // what PollOnce does after stale_after failures
	got = req("/metrics")
	for name := range got {
		if strings.HasPrefix(name, "kafka_") {
			t.Errorf("%s still served after the result was withdrawn", name)
		}
	}
	for _, name := range []string{"accesslog_exporter_kafka_up", "accesslog_exporter_kafka_polls_total", "accesslog_exporter_kafka_brokers_expected"} {
		if got[name] == nil {
			t.Errorf("poller's own %s missing", name)
		}
	}
}

func keys(m map[string]*dto.MetricFamily) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
