package config

import (
	"strings"
	"time"
)

// Ranges of the counts, intervals and sizes whose absurd values hurt: a
// goroutine or a connection per unit, a poll or a push per interval, memory
// per byte. docs/configuration.md lists them; change both together.
const (
	maxWorkers        = 1024
	maxConcurrency    = 64 // loki.batch.max_concurrency: pushes in flight, each a connection and a batch in memory
	maxSeries         = 100_000
	maxBuckets        = 100
	maxStreams        = 100_000
	maxStaleAfter     = 1000
	maxLagPartitions  = 100_000
	maxBrokers        = 10_000
	minFetchBytes     = 1 * kiB
	maxFetchBytes     = 1 * giB
	minBatchBytes     = 1 * kiB
	maxBatchBytes     = 64 * miB
	maxInflightBytes  = 16 * giB
	minCommitInterval = 10 * time.Millisecond
	minFetchWait      = time.Millisecond
	maxFetchWait      = 10 * time.Second // kgo's request timeout allows for it
	minPollInterval   = time.Second      // health.interval and push.interval
	maxPollInterval   = 24 * time.Hour
	minTimeout        = 100 * time.Millisecond
	maxTimeout        = 10 * time.Minute
	minBackoff        = 10 * time.Millisecond
	maxBackoff        = time.Hour
	minBatchWait      = 10 * time.Millisecond
	maxBatchWait      = 10 * time.Minute
)

// count reports n outside [lo, hi]; note says what a special value means,
// e.g. "0: as many as GOMAXPROCS".
func (v *validator) count(path string, n, lo, hi int, note string) {
	if n < lo || n > hi {
		if note != "" {
			note = " (" + note + ")"
		}
		v.errorf(path, "must be from %d to %d%s, got %d", lo, hi, note, n)
	}
}

// interval reports d outside [lo, hi].
func (v *validator) interval(path string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		v.errorf(path, "must be from %s to %s, got %s", shortDuration(lo), shortDuration(hi), shortDuration(d))
	}
}

// size reports b outside [lo, hi].
func (v *validator) size(path string, b, lo, hi ByteSize) {
	if b < lo || b > hi {
		v.errorf(path, "must be from %v to %v, got %v", lo, hi, b)
	}
}

// shortDuration writes 24h rather than 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
