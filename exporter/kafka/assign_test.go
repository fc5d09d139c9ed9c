package kafka

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// workers is where c sends each partition's batches, as "topic/partition:worker".
func workers(c *Consumer) map[string]int {
	out := map[string]int{}
	for k, p := range c.parts {
		out[fmt.Sprintf("%s/%d", k.topic, k.part)] = p.worker
	}
	return out
}

func newAssignConsumer(workers int) *Consumer {
	return &Consumer{queues: make([]chan *Batch, workers), parts: map[tp]*partition{},
		assigned:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "assigned"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rebalances"}, []string{"event"})}
}

// Partitions go to the workers evenly, in topic and partition order, so two
// members assigned the same partitions (the metrics and the log member of a
// process) map them alike; partitions added later go to the least loaded.
func TestAssignBalancesWorkersAlike(t *testing.T) {
	a, b := newAssignConsumer(2), newAssignConsumer(2)
	a.assign(map[string][]int32{"nginxlog": {5, 0, 3, 1, 4, 2}, "api": {0}})
	b.assign(map[string][]int32{"api": {0}})
	b.assign(map[string][]int32{"nginxlog": {0, 1, 2, 3, 4, 5}})
	wantA := map[string]int{"api/0": 0, "nginxlog/0": 1, "nginxlog/1": 0, "nginxlog/2": 1, "nginxlog/3": 0, "nginxlog/4": 1, "nginxlog/5": 0}
	gotA, gotB := workers(a), workers(b)

	a.detach(map[string][]int32{"nginxlog": {1, 3, 5}, "api": {0}}, "revoked")
	a.assign(map[string][]int32{"nginxlog": {7, 6}})
	gotLater := workers(a)
	wantLater := map[string]int{"nginxlog/0": 1, "nginxlog/2": 1, "nginxlog/4": 1, "nginxlog/6": 0, "nginxlog/7": 0}
	if fmt.Sprint(gotA) != fmt.Sprint(wantA) || fmt.Sprint(gotB) != fmt.Sprint(gotA) || fmt.Sprint(gotLater) != fmt.Sprint(wantLater) {
		t.Errorf("workers:\n first  %v\n want   %v\n second %v (want the same)\n after a revoke and an assign %v\n want   %v", gotA, wantA, gotB, gotLater, wantLater)
	}
}
