package config

import (
	"net/url"
	"regexp"
	"time"
)

// Loki is where raw lines are forwarded. An empty URL disables forwarding;
// then offsets are committed once lines are counted.
type Loki struct {
	// URL is Loki's base URL (e.g. http://loki:3100) or the full push URL.
	URL string `yaml:"url"`
	// Group is the consumer group of the log path: it commits only what
	// the log store acknowledged, apart from kafka.group, which commits
	// what has been counted. Empty means "<kafka.group>-loki".
	Group string `yaml:"group"`
	// Timeout bounds one push request.
	Timeout time.Duration `yaml:"timeout"`
	// Tenant is sent as X-Scope-OrgID; empty sends none.
	Tenant string     `yaml:"tenant"`
	Auth   LokiAuth   `yaml:"auth"`
	TLS    TLS        `yaml:"tls"` // used for https URLs
	Batch  LokiBatch  `yaml:"batch"`
	Retry  LokiRetry  `yaml:"retry"`
	Labels LokiLabels `yaml:"labels"`
	// StructuredMetadata attaches topic, partition, offset and trace_id to
	// every entry (Loki 3 structured metadata). Off by default: older Loki
	// versions and some Loki-compatible stores reject it.
	StructuredMetadata bool `yaml:"structured_metadata"`
	// MaxInflightBytes bounds the record bytes fetched but not yet
	// acknowledged; at the bound fetching pauses until acknowledgements free
	// room, and Kafka holds the rest.
	MaxInflightBytes ByteSize `yaml:"max_inflight_bytes"`
	// MaxLineBytes caps a line sent to the log store; a longer one is cut
	// to it (counted). The default is Loki's own max_line_size, so a line
	// Loki would refuse is cut here instead, and a 40 MiB line costs the
	// push path 256 KB, not several copies of 40 MiB.
	MaxLineBytes ByteSize `yaml:"max_line_bytes"`
	// ShutdownTimeout bounds the wait for acknowledgements on shutdown and
	// on partition revocation; what is not acknowledged by then is not
	// committed and is read again.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	Drop            LokiDrop      `yaml:"drop"`
}

// LokiAuth is basic auth or a bearer token; secrets live in files.
type LokiAuth struct {
	Username        string `yaml:"username"`
	PasswordFile    string `yaml:"password_file"`
	BearerTokenFile string `yaml:"bearer_token_file"`
}

// LokiBatch says when a push is sent and how many may be outstanding.
type LokiBatch struct {
	// MaxBytes of line bytes in one push; a batch is sent when it is full
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxWait is the longest a line waits in an unfilled batch.
	MaxWait time.Duration `yaml:"max_wait"`
	// MaxConcurrency bounds the push requests in flight at once.
	MaxConcurrency int `yaml:"max_concurrency"`
}

// LokiRetry is the backoff for network errors, 429 and 5xx.
type LokiRetry struct {
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// MaxRetries of one batch; 0 retries forever (Kafka is the buffer).
	// A batch that runs out of retries is dropped and counted.
	MaxRetries int `yaml:"max_retries"`
}

// LokiLabels are the stream labels: few and bounded on purpose, everything
// else stays in the line.
type LokiLabels struct {
	Job         string `yaml:"job"`
	Host        bool   `yaml:"host"`         // host from the Filebeat envelope
	VHost       bool   `yaml:"vhost"`        // the line's vhost
	ParseStatus bool   `yaml:"parse_status"` // parse_status="parsed" or "unparsed"
	// MaxStreams bounds the label sets; past it new host/vhost values are
	// sent as "__other__".
	MaxStreams int         `yaml:"max_streams"`
	Extra      []LokiLabel `yaml:"extra"`
}

// LokiLabel is one static label.
type LokiLabel struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// LokiDrop lets lines be dropped, counted, instead of waiting for Loki.
type LokiDrop struct {
	Enabled bool `yaml:"enabled"`
	// MaxAge drops a batch still not accepted this long after its first push.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes drops a failing batch while more line bytes than this wait for Loki.
	MaxBytes ByteSize `yaml:"max_bytes"`
}

func defaultLoki() Loki {
	// MaxInflightBytes holds every worker's open batch and max_concurrency
	// pushes of batch.max_bytes of lines, each as its Kafka records
	// (envelopes are about 2.5x the line); more buys throughput only
	// against a store slower than about 200ms an answer, at 3x the peak
	// RSS (docs/performance.md).
	return Loki{
		Timeout:          10 * time.Second,
		Batch:            LokiBatch{MaxBytes: 1 * miB, MaxWait: time.Second, MaxConcurrency: 4},
		Retry:            LokiRetry{MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second},
		Labels:           LokiLabels{Job: "accesslog", Host: true, ParseStatus: true, MaxStreams: 1000},
		MaxInflightBytes: 16 * miB,
		MaxLineBytes:     256 * kB,
		ShutdownTimeout:  30 * time.Second,
	}
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (v *validator) loki(l *Loki) {
	if l.URL == "" {
		return
	}
	if u, err := url.Parse(l.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf("loki.url", "want an http:// or https:// URL, got %q", RedactURL(l.URL))
	}
	v.interval("loki.timeout", l.Timeout, minTimeout, maxTimeout)
	v.interval("loki.batch.max_wait", l.Batch.MaxWait, minBatchWait, maxBatchWait)
	v.interval("loki.retry.min_backoff", l.Retry.MinBackoff, minBackoff, maxBackoff)
	v.interval("loki.shutdown_timeout", l.ShutdownTimeout, minTimeout, maxTimeout)
	if l.Retry.MaxBackoff < l.Retry.MinBackoff {
		v.errorf("loki.retry.max_backoff", "must be at least min_backoff (%v), got %v", l.Retry.MinBackoff, l.Retry.MaxBackoff)
	} else {
		v.interval("loki.retry.max_backoff", l.Retry.MaxBackoff, minBackoff, maxBackoff)
	}
	if l.Retry.MaxRetries < 0 {
		v.errorf("loki.retry.max_retries", "must be 0 (forever) or more, got %d", l.Retry.MaxRetries)
	}
	v.size("loki.batch.max_bytes", l.Batch.MaxBytes, minBatchBytes, maxBatchBytes)
	v.count("loki.batch.max_concurrency", l.Batch.MaxConcurrency, 1, maxConcurrency, "")
	if l.MaxInflightBytes < l.Batch.MaxBytes {
		v.errorf("loki.max_inflight_bytes", "must be at least batch.max_bytes (%v), got %v", l.Batch.MaxBytes, l.MaxInflightBytes)
	} else {
		v.size("loki.max_inflight_bytes", l.MaxInflightBytes, l.Batch.MaxBytes, maxInflightBytes)
	}
	if l.MaxLineBytes <= 0 {
		v.errorf("loki.max_line_bytes", "must be positive, got %d", int64(l.MaxLineBytes))
	}
	if l.Labels.Job == "" {
		v.errorf("loki.labels.job", "required: Loki needs at least one label on every stream")
	}
	v.count("loki.labels.max_streams", l.Labels.MaxStreams, 1, maxStreams, "")
	reserved := map[string]bool{"job": true, "host": true, "vhost": true, "parse_status": true}
	for i, e := range l.Labels.Extra {
		p := idx("loki.labels.extra", i)
		switch {
		case !labelName.MatchString(e.Name):
			v.errorf(p+".name", "want a label name ([a-zA-Z_][a-zA-Z0-9_]*), got %q", e.Name)
		case reserved[e.Name]:
			v.errorf(p+".name", "%q is set by the exporter; pick another name", e.Name)
		case e.Value == "":
			v.errorf(p+".value", "empty: Loki drops labels with empty values")
		}
	}
	a := l.Auth
	if (a.Username == "") != (a.PasswordFile == "") {
		v.errorf("loki.auth", "username and password_file are set together or not at all")
	}
	if a.Username != "" && a.BearerTokenFile != "" {
		v.errorf("loki.auth.bearer_token_file", "basic auth and a bearer token exclude each other")
	}
	v.readable("loki.auth.password_file", a.PasswordFile)
	v.readable("loki.auth.bearer_token_file", a.BearerTokenFile)
	v.tls("loki.tls", l.TLS)
	if l.Drop.Enabled && l.Drop.MaxAge <= 0 && l.Drop.MaxBytes <= 0 {
		v.errorf("loki.drop", "enabled needs max_age or max_bytes (or both)")
	}
	if l.Drop.MaxAge < 0 {
		v.errorf("loki.drop.max_age", "must not be negative, got %v", l.Drop.MaxAge)
	}
}
