package config

import "time"

// Health is the Kafka cluster health poller.
type Health struct {
	Enabled bool `yaml:"enabled"`
	// Interval between polls; a scrape always returns the last poll's result.
	Interval time.Duration `yaml:"interval"`
}

func defaultHealth() Health {
	return Health{Enabled: true, Interval: 30 * time.Second}
}

func (v *validator) health(h *Health) {
	if h.Enabled && h.Interval <= 0 {
		v.errorf("health.interval", "must be positive, got %v", h.Interval)
	}
}
