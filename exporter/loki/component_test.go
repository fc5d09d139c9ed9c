package loki

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/component"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/loki/lokitest"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// Each push request is the sender's cycle: a store answering 503 makes it
// unhealthy, one acknowledging makes it healthy again.
func TestPushReportsComponentStatus(t *testing.T) {
	store := newStore(t)
	set := component.NewSet()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)
	c, err := New(testConfig(store.URL()), Options{Status: set.Component("loki")})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(c.Close)
	success := func(want string) func() []string {
		return func() []string {
			err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP accesslog_exporter_component_success 1 if the component's last cycle succeeded, else 0: a commit for a Kafka consumer, a push for the log store and push, a poll for the health poller, an export for tracing.
# TYPE accesslog_exporter_component_success gauge
accesslog_exporter_component_success{component="loki"} `+want+"\n"), "accesslog_exporter_component_success")
			if err != nil {
				return []string{err.Error()}
			}
			return nil
		}
	}

	store.SetFault(lokitest.Status(http.StatusServiceUnavailable))
	addLines(c.NewAppender(), &countAck{}, 0, 10, "web-1")
	testbed.Eventually(t, 10*time.Second, success("0"))
	store.SetFault(lokitest.NoFault)
	testbed.Eventually(t, 10*time.Second, success("1"))
}

// A source whose lines panic half-way gives the appender's lock back, so
// the next source (and the flush on shutdown) does not wait forever.
func TestAppendGivesTheLockBackOnPanic(t *testing.T) {
	store := newStore(t)
	c, _ := newClient(t, testConfig(store.URL()))
	a := c.NewAppender()
	func() {
		defer func() { _ = recover() }()
		a.Append("nginxlog", 0, &countAck{}, func() {
			a.Add(&Line{Time: time.Unix(1700000000, 0), Line: []byte("first")})
			panic("a defect while reading a record")
		})
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		addLines(a, &countAck{}, 1, 10, "web-1")
		c.Flush()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the appender's lock stayed held after a panic in lines")
	}
	if err := c.wait(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := store.Len(); got != 11 {
		t.Errorf("store holds %d lines, want 11 (the one added before the panic and the 10 after)", got)
	}
}
