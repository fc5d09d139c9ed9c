package config

import (
	"strconv"
	"strings"
	"testing"
)

// Counts of goroutines and connections, intervals and sizes have upper (and
// lower) bounds: a million workers took 2.5 GB in 3 s, and a 1ms health
// interval wrote 20k warnings in 20 s (issue 13, defect 6).
func TestBounds(t *testing.T) {
	loki := "loki:\n  url: http://loki:3100\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"workers huge", "kafka:\n  workers: 1000000\n", "config.yml:2: kafka.workers: must be from 0 to 1024 (0: as many as GOMAXPROCS), got 1000000"},
		{"workers at bound", "kafka:\n  workers: 1024\n", ""},
		{"loki concurrency huge", loki + "  batch:\n    max_concurrency: 1000000\n", "config.yml:4: loki.batch.max_concurrency: must be from 1 to 64, got 1000000"},
		{"loki concurrency zero", loki + "  batch:\n    max_concurrency: 0\n", "config.yml:4: loki.batch.max_concurrency: must be from 1 to 64, got 0"},
		{"loki batch huge", loki + "  batch:\n    max_bytes: 1GiB\n", "config.yml:4: loki.batch.max_bytes: must be from 1KiB to 64MiB, got 1GiB\nconfig.yml: loki.max_inflight_bytes: must be at least batch.max_bytes (1GiB), got 16MiB"},
		{"loki batch wait tiny", loki + "  batch:\n    max_wait: 1ms\n", "config.yml:4: loki.batch.max_wait: must be from 10ms to 10m, got 1ms"},
		{"loki inflight huge", loki + "  max_inflight_bytes: 100GiB\n", "config.yml:3: loki.max_inflight_bytes: must be from 1MiB to 16GiB, got 100GiB"},
		{"loki backoff tiny", loki + "  retry:\n    min_backoff: 1us\n", "config.yml:4: loki.retry.min_backoff: must be from 10ms to 1h, got 1µs"},
		{"loki max backoff huge", loki + "  retry:\n    max_backoff: 100h\n", "config.yml:4: loki.retry.max_backoff: must be from 10ms to 1h, got 100h"},
		{"loki shutdown huge", loki + "  shutdown_timeout: 1h\n", "config.yml:3: loki.shutdown_timeout: must be from 100ms to 10m, got 1h"},
		{"loki streams huge", loki + "  labels:\n    max_streams: 10000000\n", "config.yml:4: loki.labels.max_streams: must be from 1 to 100000, got 10000000"},
		{"health interval 1ms", "health:\n  interval: 1ms\n  timeout: 1ms\n",
			"config.yml:2: health.interval: must be from 1s to 24h, got 1ms\nconfig.yml:3: health.timeout: must be at least 100ms, got 1ms"},
		{"health interval a week", "health:\n  interval: 168h\n", "config.yml:2: health.interval: must be from 1s to 24h, got 168h"},
		{"health lag partitions huge", "health:\n  lag_seconds_partitions: 10000000\n", "config.yml:2: health.lag_seconds_partitions: must be from 0 to 100000 (0: off), got 10000000"},
		{"health stale huge", "health:\n  stale_after: 1000000\n", "config.yml:2: health.stale_after: must be from 1 to 1000, got 1000000"},
		{"health off unchecked", "health:\n  enabled: false\n  interval: 1ms\n", ""},
		{"commit interval tiny", "kafka:\n  commit_interval: 1ms\n", "config.yml:2: kafka.commit_interval: must be from 10ms to 24h, got 1ms"},
		{"fetch huge", "kafka:\n  fetch_max_bytes: 4GiB\n", "config.yml:2: kafka.fetch_max_bytes: must be from 1KiB to 1GiB, got 4GiB"},
		{"fetch partition tiny", "kafka:\n  fetch_max_partition_bytes: 10B\n", "config.yml:2: kafka.fetch_max_partition_bytes: must be from 1KiB to 1GiB, got 10B"},
		{"fetch min zero", "kafka:\n  fetch_min_bytes: 0\n", "config.yml:2: kafka.fetch_min_bytes: must be from 1B to 1GiB, got 0B"},
		{"fetch min over max", "kafka:\n  fetch_max_bytes: 1MiB\n  fetch_min_bytes: 2MiB\n", "config.yml:3: kafka.fetch_min_bytes: must not be more than kafka.fetch_max_bytes (1MiB), got 2MiB"},
		{"fetch wait zero", "kafka:\n  fetch_max_wait: 0s\n", "config.yml:2: kafka.fetch_max_wait: must be from 1ms to 10s, got 0s"},
		{"fetch wait a minute", "kafka:\n  fetch_max_wait: 1m\n", "config.yml:2: kafka.fetch_max_wait: must be from 1ms to 10s, got 1m"},
		{"max series huge", "metrics:\n  max_series: 100000000\n", "config.yml:2: metrics.max_series: must be from 1 to 100000, got 100000000"},
		{"push interval 1ms", "push:\n  url: http://vm:8428/api/v1/import/prometheus\n  interval: 1ms\n", "config.yml:3: push.interval: must be from 1s to 24h, got 1ms"},
		{"tracing timeout tiny", "tracing:\n  endpoint: http://otel:4318\n  timeout: 1ns\n", "config.yml:3: tracing.timeout: must be from 100ms to 10m, got 1ns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("config.yml", []byte(tc.yaml))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("for\n%s\n got: %s\nwant: %s", tc.yaml, got, tc.want)
			}
		})
	}
}

func TestBucketCount(t *testing.T) {
	bounds := make([]string, maxBuckets+1)
	for i := range bounds {
		bounds[i] = strconv.Itoa(i + 1)
	}
	yml := "metrics:\n  buckets:\n    response_size: [" + strings.Join(bounds, ", ") + "]\n"
	_, err := Parse("config.yml", []byte(yml))
	if want := "config.yml:3: metrics.buckets.response_size: at most 100 buckets, got 101"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
