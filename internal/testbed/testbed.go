// Package testbed holds what tests of several packages share: waiting for
// a condition on a loaded machine, and the 3-broker Kafka cluster they run
// against. (The in-process log store is exporter/loki/lokitest; external
// programs are found by internal/testenv.)
package testbed

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// pollEvery is short enough to add little to a test's time and long enough
// not to steal a loaded machine's cores from what is being waited for.
const pollEvery = 20 * time.Millisecond

// Eventually calls check until it returns no mismatch or d has passed, then
// fails the test with every mismatch of the last call. A check states every
// expectation at once, so that a failure shows the whole picture, not the
// first thing that was late.
func Eventually(t testing.TB, d time.Duration, check func() []string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		mismatches := check()
		if len(mismatches) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v:\n\t%s", d, strings.Join(mismatches, "\n\t"))
			return
		}
		time.Sleep(pollEvery)
	}
}

// WaitFor is Eventually for a single condition; what names it in the failure.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	Eventually(t, d, func() []string {
		if cond() {
			return nil
		}
		return []string{"still waiting for " + what}
	})
}

// Topic is the access-log topic of Cluster, 6 partitions.
const Topic = "nginxlog"

// Cluster starts a 3-broker kfake cluster with Topic, closed when the test
// ends. Groups accept session timeouts down to 1 s, so tests can make
// rebalances fast; opts add to or override that.
func Cluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	base := []kfake.Opt{kfake.NumBrokers(3), kfake.SeedTopics(6, Topic), kfake.GroupMinSessionTimeout(time.Second)}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
