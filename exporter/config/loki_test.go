package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLokiValidation(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"no url, nothing checked", "loki:\n  timeout: 0s\n", ""},
		{"full and valid", "loki:\n  url: https://loki:3100\n  auth:\n    username: u\n    password_file: " + secret + "\n  tls:\n    ca_file: " + secret + "\n", ""},
		{"bad url", "loki:\n  url: loki:3100\n", `config.yml:2: loki.url: want an http:// or https:// URL, got "loki:3100"`},
		{"zero timeout", "loki:\n  url: http://l\n  timeout: 0s\n", "config.yml:3: loki.timeout: must be from 100ms to 10m, got 0s"},
		{"backoff order", "loki:\n  url: http://l\n  retry:\n    min_backoff: 2s\n    max_backoff: 1s\n", "config.yml:5: loki.retry.max_backoff: must be at least min_backoff (2s), got 1s"},
		{"negative retries", "loki:\n  url: http://l\n  retry:\n    max_retries: -1\n", "loki.retry.max_retries: must be 0 (forever) or more, got -1"},
		{"inflight below batch", "loki:\n  url: http://l\n  max_inflight_bytes: 1KiB\n", "config.yml:3: loki.max_inflight_bytes: must be at least batch.max_bytes (1MiB), got 1KiB"},
		{"line cap zero", "loki:\n  url: http://l\n  max_line_bytes: 0\n", "config.yml:3: loki.max_line_bytes: must be positive, got 0"},
		{"no job", "loki:\n  url: http://l\n  labels:\n    job: \"\"\n", "loki.labels.job: required"},
		{"bad extra name", "loki:\n  url: http://l\n  labels:\n    extra:\n      - name: 1x\n        value: v\n", `config.yml:5: loki.labels.extra[0].name: want a label name`},
		{"reserved extra name", "loki:\n  url: http://l\n  labels:\n    extra:\n      - name: host\n        value: v\n", `loki.labels.extra[0].name: "host" is set by the exporter`},
		{"username alone", "loki:\n  url: http://l\n  auth:\n    username: u\n", "loki.auth: username and password_file are set together"},
		{"missing token file", "loki:\n  url: http://l\n  auth:\n    bearer_token_file: /nonexistent/token\n", "loki.auth.bearer_token_file: open /nonexistent/token"},
		{"tls cert without key, worded as kafka.tls", "loki:\n  url: https://l\n  tls:\n    cert_file: " + secret + "\n", "config.yml:4: loki.tls.cert_file: set without loki.tls.key_file; a client certificate needs both"},
		{"tls enabled is kafka's alone", "loki:\n  url: https://l\n  tls:\n    enabled: true\n", "config.yml:4: loki.tls.enabled: unknown field"},
		{"drop without bound", "loki:\n  url: http://l\n  drop:\n    enabled: true\n", "loki.drop: enabled needs max_age or max_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("config.yml", []byte(tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
