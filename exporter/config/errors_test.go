package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseErrors is the catalogue of what a user can get wrong and what
// they are told. {dir} stands for a directory holding the readable files
// ca.pem, cert.pem, key.pem and password, and no missing.pem.
func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem", "password"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		// Syntax and shape.
		{"unclosed list", "kafka:\n  topics: [a\n", "config.yml:2: did not find expected ',' or ']'"},
		{"bad indentation", "kafka:\n  group: a\n topics: [a]\n", "config.yml:3: did not find expected key"},
		{"stray bracket on line 1", "kafka: [a]]\n", "config.yml:1: did not find expected key"},
		{"tab indentation", "kafka:\n\tgroup: a\n", "config.yml:2: found character that cannot start any token"},
		{"two documents", "kafka: {}\n---\nkafka: {}\n", "config.yml:2: a second YAML document; the config is one document"},
		{"file is not a mapping", "- kafka\n", "config.yml:1: want a mapping of fields, got a list"},
		{"section is not a mapping", "kafka: yes\n", `config.yml:1: kafka: want a mapping of fields, got "yes"`},
		{"unknown section", "kafak:\n  group: g\n", `config.yml:1: kafak: unknown field (did you mean "kafka"?)`},
		{"unknown field with suggestion", "kafka:\n  group: g\n  brokerz: [a]\n", `config.yml:3: kafka.brokerz: unknown field (did you mean "brokers"?)`},
		{"unknown field far from any", "kafka:\n  retention: 1\n", `config.yml:2: kafka.retention: unknown field`},
		{"unknown field in a list item", "input:\n  formats:\n    - name: a\n      format: combined\n      fromat: x\n", `config.yml:5: input.formats[0].fromat: unknown field (did you mean "format"?)`},
		{"duplicate key", "kafka:\n  group: a\n  group: b\n", "config.yml:3: kafka.group: duplicate key (first at line 2)"},
		{"merge key", "base: &b {group: g}\n", `config.yml:1: base: unknown field`},
		{"merge key in section", "kafka:\n  <<: {group: g}\n", "config.yml:2: kafka: merge keys (<<) are not supported; repeat the fields"},

		// Types.
		{"integer got word", "kafka:\n  workers: many\n", `config.yml:2: kafka.workers: want an integer, got "many"`},
		{"integer got fraction", "kafka:\n  workers: 1.5\n", `config.yml:2: kafka.workers: want an integer, got "1.5"`},
		{"integer got list", "metrics:\n  max_series: [1]\n", `config.yml:2: metrics.max_series: want an integer, got a list`},
		{"bool got word", "kafka:\n  topics_regex: maybe\n", `config.yml:2: kafka.topics_regex: want true or false, got "maybe"`},
		{"string got list", "kafka:\n  group: [a]\n", `config.yml:2: kafka.group: want a string, got a list`},
		{"list got string", "kafka:\n  topics: nginxlog\n", `config.yml:2: kafka.topics: want a list, got "nginxlog"`},
		{"number got word", "metrics:\n  buckets:\n    request_duration: [0.1, fast, 1]\n", `config.yml:3: metrics.buckets.request_duration[1]: want a number, got "fast"`},
		{"duration without unit", "kafka:\n  commit_interval: 5\n", `config.yml:2: kafka.commit_interval: want a duration such as "5s" or "1m30s", got "5"`},
		{"duration garbage", "kafka:\n  commit_interval: soon\n", `config.yml:2: kafka.commit_interval: want a duration such as "5s" or "1m30s", got "soon"`},
		{"byte size garbage", "kafka:\n  fetch_max_bytes: lots\n", `config.yml:2: kafka.fetch_max_bytes: want a size in bytes such as 1048576 or "1MiB" (units B, KB, MB, GB, KiB, MiB, GiB), got "lots"`},
		{"byte size negative", "kafka:\n  fetch_max_bytes: -1\n", `config.yml:2: kafka.fetch_max_bytes: want a size in bytes such as 1048576 or "1MiB" (units B, KB, MB, GB, KiB, MiB, GiB), got "-1"`},

		// roles.
		{"unknown role", "roles: [metrics, traces]\n", `config.yml:1: roles[1]: want "metrics" or "logs", got "traces"`},
		{"role twice", "roles:\n  - metrics\n  - metrics\n", `config.yml:3: roles[1]: "metrics" listed twice`},
		{"logs without loki", "roles: [logs]\n", `config.yml:1: roles[0]: "logs" needs loki.url`},
		{"loki group equals kafka group", "kafka:\n  group: g\nloki:\n  url: http://l:3100\n  group: g\n", `config.yml:5: loki.group: must differ from kafka.group ("g"): each sink keeps its own offsets`},
		{"instance id from an unset variable", "kafka:\n  instance_id: ${ACCESSLOG_TEST_UNSET_POD}\n", "config.yml:2: kafka.instance_id: environment variable ACCESSLOG_TEST_UNSET_POD is not set"},

		// kafka.
		{"empty broker", "kafka:\n  brokers: [a:9092, '']\n", "config.yml:2: kafka.brokers[1]: empty broker address"},
		{"no topics", "kafka:\n  topics: []\n", "config.yml:2: kafka.topics: at least one topic is required"},
		{"null topics", "kafka:\n  topics:\n", "config.yml:2: kafka.topics: at least one topic is required"},
		{"empty topic", "kafka:\n  topics:\n    - a\n    - ''\n", "config.yml:4: kafka.topics[1]: empty topic name"},
		{"bad topic regex", "kafka:\n  topics_regex: true\n  topics: ['nginx(']\n", `config.yml:3: kafka.topics[0]: invalid regular expression "nginx(": missing closing )`},
		{"topic is not a regex unless asked", "kafka:\n  topics: ['nginx(']\n", ""},
		{"empty group", "kafka:\n  group: ''\n", "config.yml:2: kafka.group: required: the consumer group shares partitions among replicas and keeps their offsets"},
		{"start offset", "kafka:\n  start_offset: first\n", `config.yml:2: kafka.start_offset: want earliest or latest, got "first"`},
		{"fetch max bytes zero", "kafka:\n  fetch_max_bytes: 0\n", "config.yml:2: kafka.fetch_max_bytes: must be from 1KiB to 1GiB, got 0B"},
		{"fetch max partition bytes zero", "kafka:\n  fetch_max_partition_bytes: 0B\n", "config.yml:2: kafka.fetch_max_partition_bytes: must be from 1KiB to 1GiB, got 0B"},
		{"commit interval zero", "kafka:\n  commit_interval: 0s\n", "config.yml:2: kafka.commit_interval: must be from 10ms to 24h, got 0s"},
		{"commit interval negative", "kafka:\n  commit_interval: -5s\n", "config.yml:2: kafka.commit_interval: must be from 10ms to 24h, got -5s"},
		{"workers negative", "kafka:\n  workers: -1\n", "config.yml:2: kafka.workers: must be from 0 to 1024 (0: as many as GOMAXPROCS), got -1"},
		{"tls ca missing", "kafka:\n  tls:\n    enabled: true\n    ca_file: {dir}/missing.pem\n", "config.yml:4: kafka.tls.ca_file: open {dir}/missing.pem: no such file or directory"},
		{"tls ca is a directory", "kafka:\n  tls:\n    ca_file: {dir}\n", "config.yml:3: kafka.tls.ca_file: {dir} is a directory, want a file"},
		{"tls cert missing", "kafka:\n  tls:\n    cert_file: {dir}/missing.pem\n    key_file: {dir}/key.pem\n", "config.yml:3: kafka.tls.cert_file: open {dir}/missing.pem: no such file or directory"},
		{"tls cert without key", "kafka:\n  tls:\n    cert_file: {dir}/cert.pem\n", "config.yml:3: kafka.tls.cert_file: set without kafka.tls.key_file; a client certificate needs both"},
		{"tls key without cert", "kafka:\n  tls:\n    key_file: {dir}/key.pem\n", "config.yml:3: kafka.tls.key_file: set without kafka.tls.cert_file; a client certificate needs both"},
		{"tls all files", "kafka:\n  tls:\n    enabled: true\n    ca_file: {dir}/ca.pem\n    cert_file: {dir}/cert.pem\n    key_file: {dir}/key.pem\n", ""},
		{"sasl unknown mechanism", "kafka:\n  sasl:\n    mechanism: GSSAPI\n", `config.yml:3: kafka.sasl.mechanism: want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty for none, got "GSSAPI"`},
		{"sasl needs username and password file", "kafka:\n  sasl:\n    mechanism: plain\n",
			"config.yml: kafka.sasl.username: required when kafka.sasl.mechanism is PLAIN\n" +
				"config.yml: kafka.sasl.password_file: required when kafka.sasl.mechanism is PLAIN"},
		{"sasl password file missing", "kafka:\n  sasl:\n    mechanism: SCRAM-SHA-256\n    username: u\n    password_file: {dir}/missing.pem\n", "config.yml:5: kafka.sasl.password_file: open {dir}/missing.pem: no such file or directory"},
		{"sasl complete", "kafka:\n  sasl:\n    mechanism: scram-sha-512\n    username: u\n    password_file: {dir}/password\n", ""},

		// input.
		{"no format", "input:\n  format: ''\n", "config.yml:2: input.format: required unless input.json is true"},
		{"no format with json", "input:\n  format: ''\n  json: true\n", ""},
		{"escape", "input:\n  escape: html\n", `config.yml:2: input.escape: want default, json or none, got "html"`},
		{"format without name", "input:\n  formats:\n    - format: combined\n", "config.yml: input.formats[0].name: required: rules choose a format by its name"},
		{"format name duplicate", "input:\n  formats:\n    - {name: a, format: combined}\n    - name: a\n      format: main\n", `config.yml:4: input.formats[1].name: duplicate format name "a" (first at input.formats[0])`},
		{"format without format", "input:\n  formats:\n    - name: a\n", "config.yml: input.formats[0].format: required unless json is true"},
		{"format escape", "input:\n  formats:\n    - name: a\n      format: combined\n      escape: xml\n", `config.yml:5: input.formats[0].escape: want default, json or none, got "xml"`},
		{"rule without field", "input:\n  formats: [{name: a, format: combined}]\n  rules:\n    - match: x\n      format: a\n", "config.yml: input.rules[0].field: required: the envelope field to match, e.g. log.file.path"},
		{"rule bad match", "input:\n  formats: [{name: a, format: combined}]\n  rules:\n    - field: log.file.path\n      match: '[a'\n      format: a\n", `config.yml:5: input.rules[0].match: invalid regular expression "[a": missing closing ]`},
		{"rule unknown format", "input:\n  formats: [{name: a, format: combined}, {name: b, format: main}]\n  rules:\n    - field: f\n      match: x\n      format: c\n", `config.yml:6: input.rules[0].format: unknown format "c" (input.formats has a, b)`},
		{"rule format with no formats", "input:\n  rules:\n    - {field: f, match: x, format: combined}\n", `config.yml:3: input.rules[0].format: unknown format "combined": input.formats is empty`},
		{"rule without format", "input:\n  formats: [{name: a, format: combined}]\n  rules:\n    - {field: f, match: x}\n", "config.yml: input.rules[0].format: required: the name of an entry of input.formats"},

		// metrics.
		{"unknown label", "metrics:\n  labels:\n    - vhost\n    - method\n    - stauts\n", `config.yml:5: metrics.labels[2]: unknown label "stauts" (did you mean "status"?)`},
		{"unknown label far from any", "metrics:\n  labels: [path]\n", `config.yml:2: metrics.labels[0]: unknown label "path" (want one of vhost, method, status, status_class, route, upstream, host, or var_NAME with NAME in [a-z0-9_])`},
		{"var label upper case", "metrics:\n  labels: [var_Scheme]\n", `config.yml:2: metrics.labels[0]: unknown label "var_Scheme" (want one of vhost, method, status, status_class, route, upstream, host, or var_NAME with NAME in [a-z0-9_])`},
		{"var label without name", "metrics:\n  labels: [var_]\n", `config.yml:2: metrics.labels[0]: unknown label "var_" (want one of vhost, method, status, status_class, route, upstream, host, or var_NAME with NAME in [a-z0-9_])`},
		{"all known labels", "metrics:\n  labels: [vhost, method, status, status_class, route, upstream, host, var_http_x_region, var_2]\n", ""},
		{"duplicate label", "metrics:\n  labels: [vhost, status, vhost]\n", `config.yml:2: metrics.labels[2]: duplicate label "vhost" (first at metrics.labels[0])`},
		{"max series zero", "metrics:\n  max_series: 0\n", "config.yml:2: metrics.max_series: must be from 1 to 100000, got 0"},
		{"buckets empty", "metrics:\n  buckets:\n    request_duration: []\n", "config.yml:3: metrics.buckets.request_duration: at least one bucket is required"},
		{"buckets decreasing", "metrics:\n  buckets:\n    upstream_duration: [0.1, 0.5, 0.25]\n", "config.yml:3: metrics.buckets.upstream_duration[2]: buckets must be strictly increasing: 0.25 follows 0.5"},
		{"buckets repeated", "metrics:\n  buckets:\n    response_size:\n      - 100\n      - 100\n", "config.yml:5: metrics.buckets.response_size[1]: buckets must be strictly increasing: 100 follows 100"},
		{"buckets infinite", "metrics:\n  buckets:\n    response_size: [1, .inf]\n", "config.yml:3: metrics.buckets.response_size[1]: want a finite number, got +Inf (+Inf is always added)"},
		{"bucket factor one", "metrics:\n  native_histogram_bucket_factor: 1\n", "config.yml:2: metrics.native_histogram_bucket_factor: must be greater than 1, got 1"},
		{"route without match", "metrics:\n  routes:\n    rules:\n      - replace: /x\n", "config.yml: metrics.routes.rules[0].match: required: a regular expression on the path"},
		{"route bad match", "metrics:\n  routes:\n    rules:\n      - match: '^/users/(\\d+'\n        replace: /users/:id\n", `config.yml:4: metrics.routes.rules[0].match: invalid regular expression "^/users/(\\d+": missing closing )`},
		{"vhost bad regexp", "metrics:\n  vhosts:\n    - shop.example.com\n    - '~^api(\\.example\\.com$'\n", `config.yml:4: metrics.vhosts[1]: invalid regular expression "^api(\\.example\\.com$": missing closing )`},
		{"vhost empty", "metrics:\n  vhosts: [shop.example.com, '']\n", `config.yml:2: metrics.vhosts[1]: empty: want a vhost name, or ~ and a regular expression`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.ReplaceAll(tc.yaml, "{dir}", dir)
			want := strings.ReplaceAll(tc.want, "{dir}", dir)
			_, err := Parse("config.yml", []byte(text))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != want {
				t.Errorf("for\n%s\n got: %s\nwant: %s", text, got, want)
			}
		})
	}
}

// One pass shows every problem, in file order, each once: a value that did
// not decode is not checked again (the bad bucket is not also "not
// increasing"), and values from the defaults come last, without a line.
func TestParseReportsAllErrors(t *testing.T) {
	text := `kafka:
  brokerz: [a]
  workers: many
  sasl:
    mechanism: PLAIN
    username: u
metrics:
  labels: [vhost, stauts]
  buckets:
    request_duration: [0.1, x, 0.05]
  max_series: 0
input:
  escape: html
`
	want := strings.Join([]string{
		`config.yml:2: kafka.brokerz: unknown field (did you mean "brokers"?)`,
		`config.yml:3: kafka.workers: want an integer, got "many"`,
		`config.yml:8: metrics.labels[1]: unknown label "stauts" (did you mean "status"?)`,
		`config.yml:10: metrics.buckets.request_duration[1]: want a number, got "x"`,
		`config.yml:11: metrics.max_series: must be from 1 to 100000, got 0`,
		`config.yml:13: input.escape: want default, json or none, got "html"`,
		`config.yml: kafka.sasl.password_file: required when kafka.sasl.mechanism is PLAIN`,
	}, "\n")
	_, err := Parse("config.yml", []byte(text))
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestParseCapsErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("metrics:\n  labels:\n")
	for i := range maxErrors + 5 {
		fmt.Fprintf(&b, "    - bad%d\n", i)
	}
	_, err := Parse("config.yml", []byte(b.String()))
	lines := strings.Split(fmt.Sprint(err), "\n")
	if len(lines) != maxErrors+1 || lines[maxErrors] != "config.yml: ... and 5 more errors" {
		t.Errorf("got %d lines, last %q; want %d, last %q", len(lines), lines[len(lines)-1], maxErrors+1, "config.yml: ... and 5 more errors")
	}
}

func TestClosest(t *testing.T) {
	names := []string{"brokers", "topics", "group"}
	for in, want := range map[string]string{
		"brokerz": "brokers",
		"topic":   "topics",
		"gruop":   "group",
		"tls":     "",
		"x":       "",
	} {
		if got := closest(in, names); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}
