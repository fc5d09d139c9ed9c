// Package kafkahealth polls the Kafka cluster (brokers, partitions, ISR,
// consumer-group lag in offsets and seconds) in the background and serves
// the last poll's result under kafka_exporter's metric names.
package kafkahealth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/component"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafkaclient"
)

// Options are the health poller's settings beyond the config file.
type Options struct {
	// ExtraOpts are appended to the poller's client options (tests cap
	// request versions and shorten the metadata cache with them).
	ExtraOpts []kgo.Opt
	Logger    *slog.Logger
	// Status, when set, gets every poll's success and duration.
	Status *component.Status
}

// Poller polls the Kafka cluster in the background and exports the last
// result, either as a prometheus.Collector or, for clusters of thousands of
// partitions, as its poller's own metrics (Self) plus the cluster series
// encoded once per poll (Exposition). A scrape never talks to Kafka: it gets
// the metrics built by the last successful poll, so a slow or hung cluster
// cannot make a scrape slow.
//
// Every series it exports is a function of the cluster alone (no instance
// label of its own), so that replicas polling the same cluster export the
// same series and rules can deduplicate them with max by (...).
type Poller struct {
	cfg    config.Health
	kcfg   config.Kafka
	log    *slog.Logger
	cl     *kgo.Client
	adm    *kadm.Client
	filter healthFilter

	// last is the last good poll's metrics; nil when there was none or it
	// went stale.
	last      atomic.Pointer[healthSnapshot]
	failedRun int // polls failed in a row; only Run's goroutine touches it

	up          prometheus.Gauge
	duration    prometheus.Gauge
	lastSuccess prometheus.Gauge
	polls       prometheus.Counter
	pollErrors  *prometheus.CounterVec
	lagCapped   prometheus.Gauge
	expected    prometheus.Metric // nil unless ExpectedBrokers > 0

	status *component.Status

	pollMu sync.Mutex // one poll at a time (Run, and PollOnce in tests)

	wantMu sync.Mutex
	wanted map[renderKey]bool // formats scrapes asked for, encoded at each poll
}

type healthSnapshot struct {
	metrics []prometheus.Metric
	at      time.Time

	mu      sync.Mutex
	renders map[renderKey]*rendering // by format asked for, built once
}

// Poll error kinds, the values of the kind label of
// accesslog_exporter_kafka_poll_errors_total.
const (
	errKindTimeout    = "timeout"     // the poll ran out of health.timeout
	errKindMetadata   = "metadata"    // brokers, topics, partitions
	errKindOffsets    = "offsets"     // start and end offsets of partitions
	errKindGroups     = "groups"      // listing groups
	errKindGroup      = "group"       // one group's description or offsets
	errKindConfigs    = "configs"     // min.insync.replicas and friends
	errKindLagSeconds = "lag_seconds" // the record at a committed offset
)

var errPollFailed = errors.New("kafka health poll failed")

var healthErrKinds = []string{errKindTimeout, errKindMetadata, errKindOffsets, errKindGroups, errKindGroup, errKindConfigs, errKindLagSeconds}

// New builds the poller and its client; nothing connects until Run.
func New(kcfg config.Kafka, hcfg config.Health, opts Options) (*Poller, error) {
	filter, err := newHealthFilter(kcfg, hcfg)
	if err != nil {
		return nil, err
	}
	copts, err := kafkaclient.Opts(kcfg)
	if err != nil {
		return nil, err
	}
	clientID := "accesslog-exporter-health"
	if kcfg.ClientID != "" {
		clientID = kcfg.ClientID + "-health"
	}
	copts = append(copts,
		kgo.ClientID(clientID),
	)
	copts = append(copts, opts.ExtraOpts...)
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return nil, fmt.Errorf("kafka health: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Poller{
		cfg:    hcfg,
		kcfg:   kcfg,
		log:    log,
		cl:     cl,
		adm:    kadm.NewClient(cl),
		filter: filter,
		status: opts.Status,
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accesslog_exporter_kafka_up",
			Help: "1 if the last poll of the Kafka cluster succeeded (metadata and partition offsets read), else 0.",
		}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accesslog_exporter_kafka_poll_duration_seconds",
			Help: "How long the last poll of the Kafka cluster took, successful or not.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accesslog_exporter_kafka_last_poll_success_timestamp_seconds",
			Help: "Unix time at which the last successful poll of the Kafka cluster ended; 0 before the first.",
		}),
		polls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accesslog_exporter_kafka_polls_total",
			Help: "Polls of the Kafka cluster started.",
		}),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accesslog_exporter_kafka_poll_errors_total",
			Help: "Errors met while polling the Kafka cluster, by kind (timeout, metadata, offsets, groups, group, configs, lag_seconds).",
		}, []string{"kind"}),
		lagCapped: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accesslog_exporter_kafka_lag_seconds_skipped_partitions",
			Help: "Lagging partitions left without lag seconds in the last poll because of health.lag_seconds_partitions.",
		}),
	}
	for _, k := range healthErrKinds {
		h.pollErrors.WithLabelValues(k)
	}
	if hcfg.ExpectedBrokers > 0 {
		h.expected = prometheus.MustNewConstMetric(descBrokersExpected, prometheus.GaugeValue, float64(hcfg.ExpectedBrokers))
	}
	return h, nil
}

// Run polls at once and then every health.interval until ctx ends, then
// closes the client.
func (h *Poller) Run(ctx context.Context) error {
	defer h.cl.Close()
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	for {
		h.PollOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Close closes the client; for a Poller that was never Run.
func (h *Poller) Close() { h.cl.Close() }

// PollOnce polls the cluster once, bounded by health.timeout, and publishes
// the result. It reports whether the poll succeeded.
func (h *Poller) PollOnce(ctx context.Context) bool {
	h.pollMu.Lock()
	defer h.pollMu.Unlock()
	h.polls.Inc()
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	snap, errs, fatal := h.poll(pctx)
	took := time.Since(start)
	h.duration.Set(took.Seconds())
	if fatal {
		h.status.Report(took, errPollFailed)
	} else {
		h.status.Report(took, nil)
	}
	for _, e := range errs {
		kind := e.kind
		if errors.Is(e.err, context.DeadlineExceeded) && ctx.Err() == nil {
			kind = errKindTimeout
		}
		h.pollErrors.WithLabelValues(kind).Inc()
		h.log.Warn("kafka health poll", "kind", kind, "err", e.err)
	}
	if fatal {
		h.up.Set(0)
		h.failedRun++
		if h.failedRun >= h.cfg.StaleAfter && h.last.Load() != nil {
			h.last.Store(nil)
			h.log.Warn("kafka health: withdrawing stale cluster metrics", "failed_polls", h.failedRun)
		}
		return false
	}
	h.failedRun = 0
	h.up.Set(1)
	h.lastSuccess.Set(float64(snap.at.UnixNano()) / 1e9)
	// Encoded before it is published, so that no scrape waits for it.
	h.renderWanted(snap)
	h.last.Store(snap)
	return true
}

// Describe sends every descriptor Poller can export.
func (h *Poller) Describe(ch chan<- *prometheus.Desc) {
	h.Self().Describe(ch)
	for _, d := range healthDescs {
		ch <- d
	}
}

// Collect sends the poller's own metrics and the last poll's; it never
// waits for a poll. Registering Poller this way costs client_golang's
// per-metric work and the encoding of every series at every scrape; an
// exporter with a large cluster registers Self and serves the cluster
// series pre-encoded through Exposition instead.
func (h *Poller) Collect(ch chan<- prometheus.Metric) {
	h.Self().Collect(ch)
	if s := h.last.Load(); s != nil {
		for _, m := range s.metrics {
			ch <- m
		}
	}
}

// Self is the poller's own metrics (up, poll duration, errors, ...), the
// part of Poller that stays on the registry when the cluster series are
// served through Exposition. They describe this replica's poller and are
// never withdrawn.
func (h *Poller) Self() prometheus.Collector { return healthSelf{h} }

type healthSelf struct{ h *Poller }

func (s healthSelf) Describe(ch chan<- *prometheus.Desc) {
	h := s.h
	h.up.Describe(ch)
	h.duration.Describe(ch)
	h.lastSuccess.Describe(ch)
	h.polls.Describe(ch)
	h.pollErrors.Describe(ch)
	h.lagCapped.Describe(ch)
	ch <- descBrokersExpected
}

func (s healthSelf) Collect(ch chan<- prometheus.Metric) {
	h := s.h
	h.up.Collect(ch)
	h.duration.Collect(ch)
	h.lastSuccess.Collect(ch)
	h.polls.Collect(ch)
	h.pollErrors.Collect(ch)
	h.lagCapped.Collect(ch)
	if h.expected != nil {
		ch <- h.expected
	}
}

// healthFilter picks the topics and groups reported on.
type healthFilter struct {
	topics, topicsExclude *regexp.Regexp
	groups, groupsExclude *regexp.Regexp
	internal              bool
	// logTopics are the consumer's topics: names, or patterns when
	// kafka.topics_regex is set; their durability is always checked.
	logTopics []string
	logRegex  []*regexp.Regexp
}

func newHealthFilter(kcfg config.Kafka, hcfg config.Health) (healthFilter, error) {
	f := healthFilter{internal: hcfg.InternalTopics}
	var err error
	compile := func(field, re string) *regexp.Regexp {
		if re == "" || err != nil {
			return nil
		}
		var r *regexp.Regexp
		r, err = regexp.Compile(`^(?:` + re + `)$`)
		if err != nil {
			err = fmt.Errorf("health.%s: %w", field, err)
		}
		return r
	}
	f.topics = compile("topics", hcfg.Topics)
	f.topicsExclude = compile("topics_exclude", hcfg.TopicsExclude)
	f.groups = compile("groups", hcfg.Groups)
	f.groupsExclude = compile("groups_exclude", hcfg.GroupsExclude)
	if kcfg.TopicsRegex {
		// Unanchored, as the consumer's client matches them.
		for _, t := range kcfg.Topics {
			r, rerr := regexp.Compile(t)
			if rerr != nil {
				return f, fmt.Errorf("kafka.topics: %w", rerr)
			}
			f.logRegex = append(f.logRegex, r)
		}
	} else {
		f.logTopics = kcfg.Topics
	}
	return f, err
}

func (f *healthFilter) topic(name string, internal bool) bool {
	if internal && !f.internal {
		return false
	}
	return (f.topics == nil || f.topics.MatchString(name)) && (f.topicsExclude == nil || !f.topicsExclude.MatchString(name))
}

func (f *healthFilter) group(name string) bool {
	return (f.groups == nil || f.groups.MatchString(name)) && (f.groupsExclude == nil || !f.groupsExclude.MatchString(name))
}

// durable reports whether a topic's replication matters for "no line
// lost": the group offsets topic and the log topics.
func (f *healthFilter) durable(name string) bool {
	if name == consumerOffsetsTopic {
		return true
	}
	for _, t := range f.logTopics {
		if t == name {
			return true
		}
	}
	for _, r := range f.logRegex {
		if r.MatchString(name) {
			return true
		}
	}
	return false
}
