package config

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// Validate checks every value and reports all problems at once, in the same
// shape as Parse (Parse calls it). It also normalises what it accepts in more
// than one spelling: sasl.mechanism to upper case, an empty
// input.formats[].escape to "default". Call it again after changing a
// Config, e.g. after a command-line flag overrides a value.
func (c *Config) Validate() error {
	return joinErrors(c.validate(func(string) bool { return false }))
}

// knownLabels are the request-metric labels besides var_NAME.
var knownLabels = []string{"vhost", "method", "status", "status_class", "route", "upstream", "host"}

var varLabel = regexp.MustCompile(`^var_[a-z0-9_]+$`)

// validate returns the problems with c, leaving out those on paths that
// tainted reports: values that already failed to decode.
func (c *Config) validate(tainted func(path string) bool) []*Error {
	v := validator{c: c, tainted: tainted}
	v.kafka(&c.Kafka)
	v.roles(c)
	v.input(&c.Input)
	v.metrics(&c.Metrics)
	v.loki(&c.Loki)
	v.health(&c.Health)
	v.push(&c.Push)
	v.tracing(&c.Tracing)
	return v.errs
}

type validator struct {
	c       *Config
	tainted func(string) bool
	errs    []*Error
}

func (v *validator) errorf(path, format string, args ...any) {
	if v.tainted(path) {
		return
	}
	v.errs = append(v.errs, v.c.Errorf(path, format, args...).(*Error))
}

func idx(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func (v *validator) kafka(k *Kafka) {
	for i, b := range k.Brokers {
		if strings.TrimSpace(b) == "" {
			v.errorf(idx("kafka.brokers", i), "empty broker address")
		}
	}
	if len(k.Topics) == 0 {
		v.errorf("kafka.topics", "at least one topic is required")
	}
	for i, t := range k.Topics {
		switch {
		case t == "":
			v.errorf(idx("kafka.topics", i), "empty topic name")
		case k.TopicsRegex:
			v.regexp(idx("kafka.topics", i), t)
		}
	}
	if k.Group == "" {
		v.errorf("kafka.group", "required: the consumer group shares partitions among replicas and keeps their offsets")
	}
	if k.StartOffset != "earliest" && k.StartOffset != "latest" {
		v.errorf("kafka.start_offset", "want earliest or latest, got %q", k.StartOffset)
	}
	v.size("kafka.fetch_max_bytes", k.FetchMaxBytes, minFetchBytes, maxFetchBytes)
	v.size("kafka.fetch_max_partition_bytes", k.FetchMaxPartitionBytes, minFetchBytes, maxFetchBytes)
	v.size("kafka.fetch_min_bytes", k.FetchMinBytes, 1, maxFetchBytes)
	if k.FetchMinBytes > k.FetchMaxBytes && k.FetchMaxBytes >= minFetchBytes {
		v.errorf("kafka.fetch_min_bytes", "must not be more than kafka.fetch_max_bytes (%v), got %v", k.FetchMaxBytes, k.FetchMinBytes)
	}
	v.interval("kafka.fetch_max_wait", k.FetchMaxWait, minFetchWait, maxFetchWait)
	v.interval("kafka.commit_interval", k.CommitInterval, minCommitInterval, maxPollInterval)
	v.count("kafka.workers", k.Workers, 0, maxWorkers, "0: as many as GOMAXPROCS")

	v.tls("kafka.tls", k.TLS.TLS)

	s := &k.SASL
	switch m := strings.ToUpper(s.Mechanism); m {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		s.Mechanism = m
		if s.Username == "" {
			v.errorf("kafka.sasl.username", "required when kafka.sasl.mechanism is %s", m)
		}
		if s.PasswordFile == "" {
			v.errorf("kafka.sasl.password_file", "required when kafka.sasl.mechanism is %s", m)
		}
	default:
		v.errorf("kafka.sasl.mechanism", "want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty for none, got %q", s.Mechanism)
	}
	v.readable("kafka.sasl.password_file", s.PasswordFile)
}

func (v *validator) metrics(m *Metrics) {
	seen := map[string]int{}
	for i, l := range m.Labels {
		p := idx("metrics.labels", i)
		if first, dup := seen[l]; dup {
			v.errorf(p, "duplicate label %q (first at metrics.labels[%d])", l, first)
			continue
		}
		seen[l] = i
		if !varLabel.MatchString(l) && !slices.Contains(knownLabels, l) {
			msg := fmt.Sprintf("unknown label %q", l)
			if s := closest(l, knownLabels); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (want one of " + strings.Join(knownLabels, ", ") + ", or var_NAME with NAME in [a-z0-9_])"
			}
			v.errorf(p, "%s", msg)
		}
	}
	v.count("metrics.max_series", m.MaxSeries, 1, maxSeries, "")
	for i, h := range m.VHosts {
		p := idx("metrics.vhosts", i)
		if re, ok := strings.CutPrefix(h, "~"); ok {
			v.regexp(p, re)
		} else if h == "" {
			v.errorf(p, "empty: want a vhost name, or ~ and a regular expression")
		}
	}
	v.buckets("metrics.buckets.request_duration", m.Buckets.RequestDuration)
	v.buckets("metrics.buckets.upstream_duration", m.Buckets.UpstreamDuration)
	v.buckets("metrics.buckets.response_size", m.Buckets.ResponseSize)
	if !(m.NativeHistogramBucketFactor > 1) {
		v.errorf("metrics.native_histogram_bucket_factor", "must be greater than 1, got %g", m.NativeHistogramBucketFactor)
	}
	for i, r := range m.Routes.Rules {
		p := idx("metrics.routes.rules", i)
		if r.Match == "" {
			v.errorf(p+".match", "required: a regular expression on the path")
			continue
		}
		v.regexp(p+".match", r.Match)
	}
}

// buckets checks one classic histogram's upper bounds: Prometheus needs them
// strictly increasing, and +Inf is always added, so it may not be written.
func (v *validator) buckets(path string, b []float64) {
	if v.tainted(path) {
		return // one element failed to decode; the order check would blame its neighbours
	}
	if len(b) == 0 {
		v.errorf(path, "at least one bucket is required")
		return
	}
	if len(b) > maxBuckets {
		v.errorf(path, "at most %d buckets, got %d", maxBuckets, len(b))
		return
	}
	for i, x := range b {
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			v.errorf(idx(path, i), "want a finite number, got %g (+Inf is always added)", x)
			return
		case i > 0 && !(x > b[i-1]):
			v.errorf(idx(path, i), "buckets must be strictly increasing: %g follows %g", x, b[i-1])
			return
		}
	}
}

// regexp compiles re, reporting an error on path; nil when it does not compile.
func (v *validator) regexp(path, re string) *regexp.Regexp {
	c, err := regexp.Compile(re)
	if se, ok := err.(*syntax.Error); ok {
		v.errorf(path, "invalid regular expression %q: %s", re, se.Code)
	} else if err != nil {
		v.errorf(path, "invalid regular expression %q: %v", re, err)
	}
	return c
}

// readable checks a file the exporter will open at start, so that a wrong
// path fails check-config rather than the first connection. Paths are
// relative to the working directory, not to the config file.
// tls checks a TLS section the same way wherever it stands: every file set
// is readable, and a client certificate has both its halves.
func (v *validator) tls(path string, t TLS) {
	v.readable(path+".ca_file", t.CAFile)
	v.readable(path+".cert_file", t.CertFile)
	v.readable(path+".key_file", t.KeyFile)
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		v.errorf(path+".cert_file", "set without %s.key_file; a client certificate needs both", path)
	case t.KeyFile != "" && t.CertFile == "":
		v.errorf(path+".key_file", "set without %s.cert_file; a client certificate needs both", path)
	}
}

func (v *validator) readable(path, file string) {
	if file == "" {
		return
	}
	f, err := os.Open(file)
	if err != nil {
		v.errorf(path, "%v", err)
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		v.errorf(path, "%s is a directory, want a file", file)
	}
}
