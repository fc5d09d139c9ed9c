package pipeline

import (
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/metrics"
)

// rules is what a reload can change while the consumer keeps running: how a
// line is decoded and which series it becomes.
type rules struct {
	dec     *decoding
	reqs    *metrics.Requests
	metrics config.Metrics
	set     *collectorSet // reqs's collectors
	// id tells these rules from every other of the process: the shared
	// window names the rules that decoded a line by it, not by a pointer,
	// so that the collector does not scan the windows.
	id uint64
}

var rulesIDs atomic.Uint64

// live holds the rules in force. Workers load it once per batch and rebuild
// their decoder when it changed, so a reload costs the hot path one atomic
// load per batch.
type live struct {
	cur atomic.Pointer[rules]
}

func (l *live) load() *rules { return l.cur.Load() }

// newLive builds the rules of cfg and registers their metrics on reg.
func newLive(cfg *config.Config, reg prometheus.Registerer) (*live, error) {
	l := &live{}
	r, err := buildRules(cfg, nil, l)
	if err != nil {
		return nil, err
	}
	l.cur.Store(r)
	if err := reg.Register(l); err != nil {
		return nil, err
	}
	return l, nil
}

// buildRules compiles the input and metrics sections. The request metrics are
// reused when the metrics section is unchanged, so counters carry on across a
// reload instead of starting from zero.
func buildRules(cfg *config.Config, prev *rules, l *live) (*rules, error) {
	dec, err := compileInput(cfg)
	if err != nil {
		return nil, err
	}
	r := &rules{dec: dec, metrics: cfg.Metrics, id: rulesIDs.Add(1)}
	if prev != nil && reflect.DeepEqual(prev.metrics, cfg.Metrics) {
		r.reqs, r.set = prev.reqs, prev.set
		return r, nil
	}
	r.set = &collectorSet{}
	// The default vhost of a format is read from the rules in force: after
	// a later reload that keeps these metrics, formats are new pointers.
	vhost := func(f *accesslog.Format) string {
		if cur := l.load(); cur != nil {
			if v, ok := cur.dec.vhosts[f]; ok {
				return v
			}
		}
		return dec.vhosts[f]
	}
	if r.reqs, err = metrics.New(cfg.Metrics, r.set, metrics.DefaultVHost(vhost)); err != nil {
		return nil, cfg.Errorf("metrics", "%v", err)
	}
	return r, nil
}

// collectorSet is a Registerer that keeps what is registered on it and
// collects it as one unchecked collector. The request metrics register on a
// set of their own, so that a reload can replace them as a whole, with new
// label names, without a gap in the registry.
type collectorSet struct {
	mu sync.Mutex
	cs []prometheus.Collector
}

func (s *collectorSet) Register(c prometheus.Collector) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cs = append(s.cs, c)
	return nil
}

func (s *collectorSet) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = s.Register(c)
	}
}

func (s *collectorSet) Unregister(c prometheus.Collector) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.cs {
		if x == c {
			s.cs = append(s.cs[:i], s.cs[i+1:]...)
			return true
		}
	}
	return false
}

func (s *collectorSet) collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	cs := append([]prometheus.Collector(nil), s.cs...)
	s.mu.Unlock()
	for _, c := range cs {
		c.Collect(ch)
	}
}

// Describe sends nothing: the set's metrics change with reloads, which only
// an unchecked collector may do. Gather still rejects duplicate series.
func (l *live) Describe(chan<- *prometheus.Desc) {}

func (l *live) Collect(ch chan<- prometheus.Metric) {
	if r := l.load(); r != nil {
		r.set.collect(ch)
	}
}

// reloader re-reads the config file on SIGHUP or POST /-/reload. A bad file
// is rejected with its file:line: field error and the rules in force stay;
// a good one replaces the rules. Sections that need new connections (kafka,
// loki, health, push, tracing) take effect at the next restart, and the log
// says so.
type reloader struct {
	path     string
	override func(*config.Config) error
	live     *live
	log      *slog.Logger

	mu       sync.Mutex
	cfg      *config.Config
	ok       prometheus.Gauge
	lastOK   prometheus.Gauge
	restarts prometheus.Gauge
}

func newReloader(path string, override func(*config.Config) error, cfg *config.Config, l *live, reg prometheus.Registerer, log *slog.Logger) (*reloader, error) {
	r := &reloader{path: path, override: override, live: l, log: log, cfg: cfg,
		ok: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accesslog_exporter_config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded (1) or was rejected (0), leaving the previous one in force.",
		}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accesslog_exporter_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully.",
		}),
		restarts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accesslog_exporter_config_restart_required",
			Help: "1 when the file in force changed kafka, loki, health, push or tracing settings, which apply at the next restart.",
		}),
	}
	r.ok.Set(1)
	r.lastOK.SetToCurrentTime()
	for _, c := range []prometheus.Collector{r.ok, r.lastOK, r.restarts} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Reload applies the file again. It is safe to call concurrently.
func (r *reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.reload()
	if err != nil {
		r.ok.Set(0)
		r.log.Error("configuration reload rejected; the previous configuration stays in force", "file", r.path, "err", err)
		return err
	}
	r.ok.Set(1)
	r.lastOK.SetToCurrentTime()
	return nil
}

func (r *reloader) reload() error {
	cfg, err := config.Load(r.path)
	if err != nil {
		return err
	}
	if r.override != nil {
		if err := r.override(cfg); err != nil {
			return err
		}
	}
	next, err := buildRules(cfg, r.live.load(), r.live)
	if err != nil {
		return err
	}
	var later []string
	for name, same := range map[string]bool{
		"kafka":   reflect.DeepEqual(cfg.Kafka, r.cfg.Kafka),
		"loki":    reflect.DeepEqual(cfg.Loki, r.cfg.Loki),
		"health":  reflect.DeepEqual(cfg.Health, r.cfg.Health),
		"push":    reflect.DeepEqual(cfg.Push, r.cfg.Push),
		"tracing": reflect.DeepEqual(cfg.Tracing, r.cfg.Tracing),
	} {
		if !same {
			later = append(later, name)
		}
	}
	slices.Sort(later)
	prev := r.live.load()
	r.live.cur.Store(next)
	r.cfg.Input, r.cfg.Metrics = cfg.Input, cfg.Metrics
	if len(later) > 0 {
		r.restarts.Set(1)
		r.log.Warn("configuration reloaded; these sections changed and apply at the next restart", "sections", later)
	} else {
		r.restarts.Set(0)
		r.log.Info("configuration reloaded", "file", r.path, "new_series", prev.set != next.set)
	}
	return nil
}
