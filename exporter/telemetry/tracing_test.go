package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/component"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// A real OTLP/HTTP endpoint served by the test receives the spans, with the
// service name on their resource.
func TestTracingExportsOverOTLPHTTP(t *testing.T) {
	got := make(chan *coltracepb.ExportTraceServiceRequest, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("export to %s with %s, want /v1/traces, application/x-protobuf", r.URL.Path, r.Header.Get("Content-Type"))
		}
		body, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			t.Errorf("body is not an OTLP export request: %v", err)
		}
		got <- req
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	cfg := config.Default().Tracing
	cfg.Endpoint = srv.URL // no path: /v1/traces is added
	cfg.SamplingRatio = 1
	components := component.NewSet()
	tr, err := NewTracing(context.Background(), cfg, "1.2.3", components.Component("tracing"))
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() {
		t.Fatal("tracing with an endpoint is not enabled")
	}
	_, span := tr.Tracer("test").Start(context.Background(), "kafka.batch")
	span.End()
	if err := tr.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(components)
	if err := promtestutil.GatherAndCompare(reg, strings.NewReader(`
# HELP accesslog_exporter_component_success 1 if the component's last cycle succeeded, else 0: a commit for a Kafka consumer, a push for the log store and push, a poll for the health poller, an export for tracing.
# TYPE accesslog_exporter_component_success gauge
accesslog_exporter_component_success{component="tracing"} 1
`), "accesslog_exporter_component_success"); err != nil {
		t.Errorf("the export is not reported as the tracing component's cycle: %v", err)
	}
	select {
	case req := <-got:
		rs := req.GetResourceSpans()
		if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || rs[0].GetScopeSpans()[0].GetSpans()[0].GetName() != "kafka.batch" {
			t.Fatalf("unexpected export: %v", req)
		}
		var service, version string
		for _, a := range rs[0].GetResource().GetAttributes() {
			switch a.GetKey() {
			case "service.name":
				service = a.GetValue().GetStringValue()
			case "service.version":
				version = a.GetValue().GetStringValue()
			}
		}
		if service != "accesslog-exporter" || version != "1.2.3" {
			t.Errorf("resource service %q version %q", service, version)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no export reached the OTLP endpoint")
	}
}

func TestTracingOffIsNoop(t *testing.T) {
	tr, err := NewTracing(context.Background(), config.Default().Tracing, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() {
		t.Error("tracing without an endpoint is enabled")
	}
	_, span := tr.Tracer("t").Start(context.Background(), "s")
	if span.IsRecording() {
		t.Error("the no-op tracer records")
	}
}
