package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/component"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// Tracing is the exporter's tracer provider: the OpenTelemetry SDK exporting
// over OTLP when an endpoint is configured, else a no-op provider whose spans
// cost a few nanoseconds and allocate nothing.
type Tracing struct {
	trace.TracerProvider
	sdk *sdktrace.TracerProvider
}

// NewTracing builds the provider for cfg. Extra span processors (tests use
// an in-memory recorder) are added beside the OTLP exporter; with no endpoint
// and none of them, tracing is off. status, when set, gets every export's
// success and duration.
func NewTracing(ctx context.Context, cfg config.Tracing, version string, status *component.Status, extra ...sdktrace.SpanProcessor) (*Tracing, error) {
	if cfg.Endpoint == "" && len(extra) == 0 {
		return &Tracing{TracerProvider: noop.NewTracerProvider()}, nil
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName("accesslog-exporter"), semconv.ServiceVersion(version)))
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SamplingRatio))),
	}
	if cfg.Endpoint != "" {
		var exp sdktrace.SpanExporter
		switch cfg.Protocol {
		case "grpc":
			exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.Endpoint), otlptracegrpc.WithTimeout(cfg.Timeout))
		default:
			// A base URL gets the signal path, as OTEL_EXPORTER_OTLP_ENDPOINT
			// does; the exporter itself would post to "/".
			endpoint := cfg.Endpoint
			if u, perr := url.Parse(endpoint); perr == nil && (u.Path == "" || u.Path == "/") {
				u.Path = "/v1/traces"
				endpoint = u.String()
			}
			exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithTimeout(cfg.Timeout))
		}
		if err != nil {
			return nil, fmt.Errorf("endpoint: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(reportedExporter{exp, status}))
	}
	for _, p := range extra {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	sdk := sdktrace.NewTracerProvider(opts...)
	return &Tracing{TracerProvider: sdk, sdk: sdk}, nil
}

// Enabled reports whether spans go anywhere; callers skip span work when
// they do not.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// Shutdown flushes spans still buffered, bounded by timeout.
func (t *Tracing) Shutdown(timeout time.Duration) error {
	if t.sdk == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.sdk.Shutdown(ctx)
}

// reportedExporter reports each export of a batch of spans as the tracing
// component's cycle.
type reportedExporter struct {
	sdktrace.SpanExporter
	status *component.Status
}

func (e reportedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	start := time.Now()
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.status.Report(time.Since(start), err)
	return err
}
