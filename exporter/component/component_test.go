package component

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSetReportsEachComponentsLastCycle(t *testing.T) {
	set := NewSet()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)
	set.Component("kafka_health").Report(1500*time.Millisecond, nil)
	set.Component("push").Report(time.Second, nil)
	set.Component("push").Report(250*time.Millisecond, errors.New("refused"))
	set.Component("tracing") // no cycle yet: not shown
	var none *Status
	none.Report(time.Second, nil) // a component built without a status

	want := `
# HELP accesslog_exporter_component_duration_seconds How long the component's last cycle took, successful or not.
# TYPE accesslog_exporter_component_duration_seconds gauge
accesslog_exporter_component_duration_seconds{component="kafka_health"} 1.5
accesslog_exporter_component_duration_seconds{component="push"} 0.25
# HELP accesslog_exporter_component_success 1 if the component's last cycle succeeded, else 0: a commit for a Kafka consumer, a push for the log store and push, a poll for the health poller, an export for tracing.
# TYPE accesslog_exporter_component_success gauge
accesslog_exporter_component_success{component="kafka_health"} 1
accesslog_exporter_component_success{component="push"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
