package config

import "time"

// Loki is where raw lines are forwarded. An empty URL disables forwarding;
// then offsets are committed once lines are counted.
type Loki struct {
	// URL is Loki's base URL (e.g. http://loki:3100) or the full push URL.
	URL string `yaml:"url"`
	// Timeout bounds one push request.
	Timeout time.Duration `yaml:"timeout"`
}

func defaultLoki() Loki {
	return Loki{Timeout: 10 * time.Second}
}

func (v *validator) loki(l *Loki) {
	if l.URL == "" {
		return
	}
	if l.Timeout <= 0 {
		v.errorf("loki.timeout", "must be positive, got %v", l.Timeout)
	}
}
