package config

import "time"

// Default is the configuration used when there is no file, and the base a
// file is laid over: it consumes topic nginxlog with the main_timed format.
// Brokers are empty on purpose: there is no sensible default address, so the
// exporter then needs --kafka.brokers or --kafka.embedded.
func Default() Config {
	// Latency buckets reach 60s because nginx's default proxy_read_timeout is
	// 60s: the slowest upstream requests end there.
	durations := func() []float64 {
		return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	}
	// The fetch sizes bound what each member's client buffers: a fetch
	// per broker, decompressed (envelopes compress 4-10x), held until
	// polled. A broker sends at least one whole batch a partition, so
	// 128KiB means about one producer batch; throughput did not rise
	// above it while peak RSS did (docs/performance.md, the RSS curve).
	return Config{
		Kafka: Kafka{
			Topics:                 []string{"nginxlog"},
			Group:                  "accesslog-exporter",
			ClientID:               "accesslog-exporter",
			StartOffset:            "earliest",
			FetchMaxBytes:          4 * miB,
			FetchMaxPartitionBytes: 128 * kiB,
			// A fetch that returns as soon as one record is there costs
			// the same fixed work on both sides for a handful of lines;
			// at live rates waiting up to 250ms for 64KiB took a quarter
			// of the CPU per line away (docs/performance.md, fetch wait),
			// and 128KiB, as much as one partition's backlog fills, halves
			// the fetches again: 12 % more at 10k lines/s, nothing
			// measurable at 50k (docs/performance.md, the live path's
			// fixed costs). More than FetchMaxPartitionBytes would hold a
			// backlog's fetch of a lone partition for FetchMaxWait.
			FetchMinBytes:  128 * kiB,
			FetchMaxWait:   250 * time.Millisecond,
			CommitInterval: time.Second,
			Workers:        0, // GOMAXPROCS
		},
		Input: Input{
			Format: "main_timed",
			Escape: "default",
		},
		Metrics: Metrics{
			Labels:    []string{"vhost", "method", "status", "status_class"},
			MaxSeries: 10000,
			Buckets: Buckets{
				RequestDuration:  durations(),
				UpstreamDuration: durations(),
				ResponseSize:     []float64{100, 1000, 10000, 100000, 1e6, 1e7, 1e8},
			},
			NativeHistogramBucketFactor: 1.1,
			Routes:                      Routes{Auto: true},
			Exemplars:                   true,
		},
		Loki:    defaultLoki(),
		Health:  defaultHealth(),
		Push:    defaultPush(),
		Tracing: defaultTracing(),
	}
}
