// Package config is the exporter's file schema: one YAML file with a section
// per concern, defaults that work with no file at all, and validation whose
// errors name the file, line and field.
package config

import "time"

// Config is the whole file.
type Config struct {
	// Roles are the sinks this process feeds, each through its own
	// consumer-group member: "metrics" (group kafka.group) and "logs"
	// (group loki.group). Empty means metrics, and logs too when loki.url
	// is set.
	Roles   []string `yaml:"roles"`
	Kafka   Kafka    `yaml:"kafka"`
	Input   Input    `yaml:"input"`
	Metrics Metrics  `yaml:"metrics"`
	Loki    Loki     `yaml:"loki"`
	Health  Health   `yaml:"health"`
	Push    Push     `yaml:"push"`
	Tracing Tracing  `yaml:"tracing"`

	// Where the values came from, so that checks made later by other
	// packages (Errorf) point at the same file and line as ours do.
	file  string         // as given to Parse; empty for Default()
	lines map[string]int // dotted field path -> 1-based line of its key
}

// Kafka is where the access-log records come from.
type Kafka struct {
	Brokers []string `yaml:"brokers"`
	// Topics are topic names, or regular expressions when TopicsRegex is set.
	Topics      []string `yaml:"topics"`
	TopicsRegex bool     `yaml:"topics_regex"`
	Group       string   `yaml:"group"`
	ClientID    string   `yaml:"client_id"`
	// StartOffset is where a group with no committed offset starts: earliest or latest.
	StartOffset            string   `yaml:"start_offset"`
	FetchMaxBytes          ByteSize `yaml:"fetch_max_bytes"`
	FetchMaxPartitionBytes ByteSize `yaml:"fetch_max_partition_bytes"`
	// FetchMinBytes and FetchMaxWait let a broker hold a fetch until that
	// many bytes are there or the wait is over: fewer, fuller fetches.
	FetchMinBytes  ByteSize      `yaml:"fetch_min_bytes"`
	FetchMaxWait   time.Duration `yaml:"fetch_max_wait"`
	CommitInterval time.Duration `yaml:"commit_interval"`
	// InstanceID makes the members static (KIP-345): a replica restarted
	// with the same id gets its partitions back without a rebalance, and a
	// dead one keeps them until the session timeout. ${VAR} is expanded
	// from the environment (e.g. ${POD_NAME}); empty means dynamic members.
	InstanceID string `yaml:"instance_id"`
	// Workers bounds how many partitions are processed at once.
	Workers int      `yaml:"workers"`
	TLS     KafkaTLS `yaml:"tls"`
	SASL    SASL     `yaml:"sasl"`
}

// KafkaTLS turns TLS on for the brokers: Kafka addresses carry no scheme to
// say so. Setting a CA or a client certificate turns it on too.
type KafkaTLS struct {
	Enabled bool `yaml:"enabled"`
	TLS     `yaml:",inline"`
}

// TLS is the client side of a TLS connection, the same for every
// destination (Kafka, the log store): the files are PEM, read at start.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL for the Kafka connection. The password is read from a file so that it
// never sits in the config or in a process listing.
type SASL struct {
	Mechanism    string `yaml:"mechanism"` // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for none
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// Input says how records are decoded and parsed.
type Input struct {
	// Format is the default format: a preset name (combined, main, main_timed,
	// json) or an nginx log_format string.
	Format string `yaml:"format"`
	// Escape is the log_format's escape= parameter: default, json or none.
	Escape string `yaml:"escape"`
	// JSON says the default format is a JSON template (nginx escape=json with
	// a JSON object as the log_format); then Format may be empty.
	JSON bool `yaml:"json"`
	// DefaultVHost is the vhost label when a line logs no host.
	DefaultVHost string `yaml:"default_vhost"`
	// Formats are further named formats, chosen per record by Rules.
	Formats []NamedFormat `yaml:"formats"`
	// Rules choose a format per record from an envelope field; first match wins.
	Rules []FormatRule `yaml:"rules"`
}

// NamedFormat is one more format a stream may carry.
type NamedFormat struct {
	Name         string `yaml:"name"`
	Format       string `yaml:"format"`
	Escape       string `yaml:"escape"`
	JSON         bool   `yaml:"json"`
	DefaultVHost string `yaml:"default_vhost"`
}

// FormatRule picks Format for records whose envelope Field matches the
// regular expression Match (e.g. field log.file.path, or fields.log_type).
type FormatRule struct {
	Field  string `yaml:"field"`
	Match  string `yaml:"match"`
	Format string `yaml:"format"`
}

// Metrics says which series the lines become.
type Metrics struct {
	// Labels on the request metrics. Known: vhost, method, status,
	// status_class, route, upstream, host, and var_NAME for any logged
	// variable $NAME.
	Labels []string `yaml:"labels"`
	// MaxSeries bounds the label sets of each metric family; past it the
	// unbounded labels of a new label set (vhost, route, upstream, host,
	// var_NAME) are folded into "__other__", method and status kept.
	MaxSeries int `yaml:"max_series"`
	// VHosts, when set, is the list of vhosts that keep their name in the
	// vhost label: exact names, or RE2 regular expressions written with a
	// leading "~" as in nginx's server_name. Any other vhost is counted as
	// "__unlisted__", so a flood of forged Host headers cannot use up
	// MaxSeries.
	VHosts []string `yaml:"vhosts"`
	// Buckets are the classic histogram buckets; native buckets are always on.
	Buckets                     Buckets `yaml:"buckets"`
	NativeHistogramBucketFactor float64 `yaml:"native_histogram_bucket_factor"`
	Routes                      Routes  `yaml:"routes"`
	// NginxCompat also exposes nginx_http_requests_total{host,status} and
	// nginx_http_request_duration_seconds{host} as nginx-lua-prometheus names them.
	NginxCompat bool `yaml:"nginx_compat"`
	// Exemplars attaches the line's trace id ($otel_trace_id or a logged
	// traceparent), else its $request_id, to the latency histograms, at most
	// one per series per second.
	Exemplars bool `yaml:"exemplars"`
}

// Buckets of the classic histograms.
type Buckets struct {
	RequestDuration  []float64 `yaml:"request_duration"`
	UpstreamDuration []float64 `yaml:"upstream_duration"`
	ResponseSize     []float64 `yaml:"response_size"`
}

// Routes normalise paths into a bounded route label.
type Routes struct {
	// Rules run first, in order; the first whose Match matches the path
	// rewrites it with Replace (regexp.ReplaceAllString syntax) and stops.
	Rules []RouteRule `yaml:"rules"`
	// Auto replaces ids, UUIDs, hashes and long tokens with placeholders.
	Auto bool `yaml:"auto"`
}

// RouteRule is one user rewrite.
type RouteRule struct {
	Match   string `yaml:"match"`
	Replace string `yaml:"replace"`
}

// ByteSize is a size in bytes, written as 1048576, 1MiB, 512KiB or 1MB
// (see ParseByteSize).
type ByteSize int64
