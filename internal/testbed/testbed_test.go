package testbed

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// failure records what Eventually reports instead of failing the real test.
type failure struct {
	testing.TB
	msg string
}

func (f *failure) Helper() {}

func (f *failure) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestEventuallyReportsEveryMismatch(t *testing.T) {
	f := &failure{TB: t}
	start := time.Now()
	Eventually(f, 100*time.Millisecond, func() []string {
		return []string{"lines: got 1, want 2", "commits: got 0, want 1"}
	})
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("gave up after %v, before the deadline", time.Since(start))
	}
	for _, want := range []string{"after 100ms", "lines: got 1, want 2", "commits: got 0, want 1"} {
		if !strings.Contains(f.msg, want) {
			t.Errorf("failure %q does not say %q", f.msg, want)
		}
	}
}

func TestEventuallyReturnsOnceMet(t *testing.T) {
	f := &failure{TB: t}
	var calls atomic.Int32
	Eventually(f, 10*time.Second, func() []string {
		if calls.Add(1) < 3 {
			return []string{"not yet"}
		}
		return nil
	})
	if f.msg != "" || calls.Load() != 3 {
		t.Errorf("failure %q after %d calls; want none after 3", f.msg, calls.Load())
	}
	WaitFor(f, "a true condition", time.Second, func() bool { return true })
	WaitFor(f, "a false condition", 50*time.Millisecond, func() bool { return false })
	if !strings.Contains(f.msg, "still waiting for a false condition") {
		t.Errorf("WaitFor's failure %q does not name what it waited for", f.msg)
	}
}

func TestClusterHasThreeBrokers(t *testing.T) {
	c := Cluster(t)
	if n := len(c.ListenAddrs()); n != 3 {
		t.Errorf("%d brokers, want 3", n)
	}
}
