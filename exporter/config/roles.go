package config

import (
	"os"
	"slices"
	"strings"
)

// The sinks a process can feed, each through its own consumer group.
const (
	RoleMetrics = "metrics"
	RoleLogs    = "logs"
)

// Sinks says which consumer-group members run: roles when set, else (also
// for an empty list) metrics, with logs too when loki.url is set.
func (c *Config) Sinks() (metrics, logs bool) {
	if len(c.Roles) == 0 {
		return true, c.Loki.URL != ""
	}
	return slices.Contains(c.Roles, RoleMetrics), slices.Contains(c.Roles, RoleLogs)
}

// LokiGroup is the log path's consumer group.
func (c *Config) LokiGroup() string {
	if c.Loki.Group != "" {
		return c.Loki.Group
	}
	return c.Kafka.Group + "-loki"
}

// ExpandedInstanceID is kafka.instance_id with ${VAR} expanded from the
// environment.
func (k *Kafka) ExpandedInstanceID() string { return os.ExpandEnv(k.InstanceID) }

func (v *validator) roles(c *Config) {
	seen := map[string]bool{}
	for i, r := range c.Roles {
		switch {
		case r != RoleMetrics && r != RoleLogs:
			v.errorf(idx("roles", i), "want %q or %q, got %q", RoleMetrics, RoleLogs, r)
		case seen[r]:
			v.errorf(idx("roles", i), "%q listed twice", r)
		case r == RoleLogs && c.Loki.URL == "":
			v.errorf(idx("roles", i), "%q needs loki.url", r)
		}
		seen[r] = true
	}
	if _, logs := c.Sinks(); logs && c.LokiGroup() == c.Kafka.Group {
		v.errorf("loki.group", "must differ from kafka.group (%q): each sink keeps its own offsets", c.Kafka.Group)
	}
	if id := c.Kafka.InstanceID; id != "" {
		unset := false
		os.Expand(id, func(name string) string {
			if _, ok := os.LookupEnv(name); !ok {
				v.errorf("kafka.instance_id", "environment variable %s is not set", name)
				unset = true
			}
			return ""
		})
		if !unset && strings.TrimSpace(c.Kafka.ExpandedInstanceID()) == "" {
			v.errorf("kafka.instance_id", "expands to nothing")
		}
	}
}
