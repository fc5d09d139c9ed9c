package config

import (
	"net/url"
	"time"
)

// Tracing exports the exporter's own spans (one per fetched batch, through
// parse, metrics, Loki push and commit) over OTLP. An empty endpoint leaves
// tracing off: a no-op tracer that costs nothing.
type Tracing struct {
	// Endpoint is the OTLP receiver, e.g. http://otel-collector:4318 (HTTP;
	// /v1/traces is added when the URL has no path) or
	// http://otel-collector:4317 (gRPC).
	Endpoint string `yaml:"endpoint"`
	// Protocol is http (OTLP/HTTP protobuf) or grpc.
	Protocol string `yaml:"protocol"`
	// SamplingRatio is the share of batches traced, 0 to 1; parent-based,
	// so a sampled batch keeps all its child spans.
	SamplingRatio float64 `yaml:"sampling_ratio"`
	// Timeout bounds one export.
	Timeout time.Duration `yaml:"timeout"`
}

func defaultTracing() Tracing {
	return Tracing{Protocol: "http", SamplingRatio: 0.01, Timeout: 10 * time.Second}
}

func (v *validator) tracing(t *Tracing) {
	if t.Endpoint == "" {
		return
	}
	if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf("tracing.endpoint", "want an http or https URL, got %q", RedactURL(t.Endpoint))
	}
	if t.Protocol != "http" && t.Protocol != "grpc" {
		v.errorf("tracing.protocol", "want http or grpc, got %q", t.Protocol)
	}
	if !(t.SamplingRatio >= 0 && t.SamplingRatio <= 1) {
		v.errorf("tracing.sampling_ratio", "want a ratio from 0 to 1, got %v", t.SamplingRatio)
	}
	v.interval("tracing.timeout", t.Timeout, minTimeout, maxTimeout)
}
