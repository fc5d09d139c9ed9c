package pipeline

import (
	"testing"
	"time"
)

// Live traffic while the log member of a process follows its metrics
// member's fetch, and both groups rebalance: a second process joins (each
// member of the first loses partitions, the metrics member's perhaps others
// than the log member's) and leaves again. Nothing is lost, duplicates stay
// under what was in flight at the two hand-overs, and the joining process
// follows too once caught up.
func TestFollowingThroughRebalancesOfBothGroups(t *testing.T) {
	const rate = 5000
	c := newCluster(t)
	store := newStore(t)
	lines := genRaw(t, rate*12, 61, time.Now().Add(-time.Minute).Truncate(time.Second))
	cfg := splitConfig(c, store.URL(), "follow-rebalance")
	cfg.Loki.MaxInflightBytes = 512 << 10
	cfg.Loki.ShutdownTimeout = 2 * time.Second
	cfg.Kafka.FetchMaxBytes = 128 << 10
	cfg.Kafka.FetchMaxPartitionBytes = 64 << 10
	logSink := map[string]string{"sink": "logs"}
	fed := func(r *lokiRun) float64 {
		return parse(t, get(t, r.metrics)).sum("accesslog_exporter_fed_records_total", logSink)
	}

	a := startRunWith(t, c, cfg, Options{ShutdownTimeout: 5 * time.Second})
	p := producePaced(t, c, lines, rate)
	eventually(t, 20*time.Second, func() string {
		if fed(a) == 0 {
			return "the first process's log member took no record from its metrics member's fetch"
		}
		return ""
	})
	b := startRunWith(t, c, cfg, Options{ShutdownTimeout: 5 * time.Second})
	eventually(t, 30*time.Second, func() string {
		s := parse(t, get(t, b.metrics))
		if s.sum("accesslog_exporter_assigned_partitions", logSink) == 0 || s.sum("accesslog_exporter_assigned_partitions", map[string]string{"sink": "metrics"}) == 0 {
			return "the joining process's members got no partitions"
		}
		if fed(b) == 0 {
			return "the joining process's log member took no record from its metrics member's fetch"
		}
		return ""
	})
	stops := parse(t, get(t, a.metrics)).sum("accesslog_exporter_feed_stops_total", logSink)
	b.stop(t)
	<-p.done

	n := int64(len(lines))
	waitBothCommitted(t, c, cfg.Kafka.Group, cfg.LokiGroup(), n, time.Minute)
	// Two hand-overs, each re-reading at most what was in flight; lines are
	// over 100 bytes.
	inflight := 2 * int(cfg.Loki.MaxInflightBytes+3*cfg.Kafka.FetchMaxBytes)
	if missing, extra := compare(store, wantLines(lines)); missing != 0 || extra*100 > inflight {
		t.Errorf("log store: %d lines missing, %d extra (in-flight bound %d bytes)", missing, extra, inflight)
	}
	t.Logf("%d lines; first process: %v taken from the feed, %v stops by the join", n, fed(a), stops)
}
