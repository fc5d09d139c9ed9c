package config

import (
	"strings"
	"testing"
)

func TestHealthValidation(t *testing.T) {
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"timeout longer than interval", "health:\n  interval: 10s\n  timeout: 20s\n", "cfg.yml:5: health.timeout: 20s is longer than health.interval 10s"},
		{"bad regex", "health:\n  topics: '(['\n", "cfg.yml:4: health.topics: invalid regular expression"},
		{"stale after zero", "health:\n  stale_after: 0\n", "cfg.yml:4: health.stale_after: must be from 1 to 1000, got 0"},
		{"negative lag seconds cap", "health:\n  lag_seconds_partitions: -1\n", "cfg.yml:4: health.lag_seconds_partitions: must be from 0 to 100000 (0: off), got -1"},
		{"disabled skips checks", "health:\n  enabled: false\n  stale_after: 0\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("cfg.yml", []byte("kafka:\n  brokers: [k:9092]\n"+tc.yml))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
