// Package component gives every long-running part of the exporter (the Kafka
// consumer of each sink, the log-store sender, the health poller, push,
// tracing) the same pair of self-metrics, as node_exporter's
// scrape_collector_success and scrape_collector_duration_seconds do for its
// collectors: whether the component's last cycle succeeded and how long it
// took, labelled by component.
package component

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descSuccess = prometheus.NewDesc("accesslog_exporter_component_success",
		"1 if the component's last cycle succeeded, else 0: a commit for a Kafka consumer, a push for the log store and push, a poll for the health poller, an export for tracing.",
		[]string{"component"}, nil)
	descDuration = prometheus.NewDesc("accesslog_exporter_component_duration_seconds",
		"How long the component's last cycle took, successful or not.",
		[]string{"component"}, nil)
)

// Status is one component's last cycle. A nil *Status reports nothing, so a
// component built without one (in a test) needs no check.
type Status struct {
	name    string
	done    atomic.Bool // a cycle has ended
	ok      atomic.Bool
	seconds atomic.Uint64 // float64 bits
}

// Report records a cycle that took took and ended with err.
func (s *Status) Report(took time.Duration, err error) {
	if s == nil {
		return
	}
	s.ok.Store(err == nil)
	s.seconds.Store(math.Float64bits(took.Seconds()))
	s.done.Store(true)
}

// Set holds the statuses of a process's components and exports them; it is
// a prometheus.Collector. A component shows from the end of its first cycle,
// so a replica that is starting does not report a failure.
type Set struct {
	mu    sync.Mutex
	byKey map[string]*Status
}

// NewSet returns an empty set; register it once.
func NewSet() *Set { return &Set{byKey: map[string]*Status{}} }

// Component returns the status of the named component, the same one for
// the same name.
func (s *Set) Component(name string) *Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.byKey[name]
	if !ok {
		st = &Status{name: name}
		s.byKey[name] = st
	}
	return st
}

// Describe implements prometheus.Collector.
func (s *Set) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSuccess
	ch <- descDuration
}

// Collect implements prometheus.Collector; it never blocks on a component.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	all := make([]*Status, 0, len(s.byKey))
	for _, st := range s.byKey {
		all = append(all, st)
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	for _, st := range all {
		if !st.done.Load() {
			continue
		}
		ok := 0.0
		if st.ok.Load() {
			ok = 1
		}
		ch <- prometheus.MustNewConstMetric(descSuccess, prometheus.GaugeValue, ok, st.name)
		ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, math.Float64frombits(st.seconds.Load()), st.name)
	}
}
