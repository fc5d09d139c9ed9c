package config

import (
	"net/url"
	"strings"
	"time"
)

// Push sends the whole registry in the Prometheus text format to a URL on
// an interval, for where Prometheus cannot reach the exporter. An empty URL
// disables it.
type Push struct {
	// URL is e.g. VictoriaMetrics' http://vm:8428/api/v1/import/prometheus
	// or a Pushgateway's http://pgw:9091/metrics/job/accesslog-exporter.
	URL      string        `yaml:"url"`
	Interval time.Duration `yaml:"interval"`
	// Method is the HTTP method: POST (VictoriaMetrics, Pushgateway adds
	// to the group) or PUT (Pushgateway replaces the group).
	Method string `yaml:"method"`
	// ExtraLabels are added to every pushed series, each as name=value.
	ExtraLabels []string `yaml:"extra_labels"`
	// BearerTokenFile holds a token sent as "Authorization: Bearer ...".
	BearerTokenFile string `yaml:"bearer_token_file"`
	// Timeout bounds one push.
	Timeout time.Duration `yaml:"timeout"`
}

func defaultPush() Push {
	return Push{Interval: 15 * time.Second, Method: "POST", Timeout: 10 * time.Second}
}

func (v *validator) push(p *Push) {
	if p.URL == "" {
		return
	}
	if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf("push.url", "want an http or https URL, got %q", RedactURL(p.URL))
	}
	v.interval("push.interval", p.Interval, minPollInterval, maxPollInterval)
	v.interval("push.timeout", p.Timeout, minTimeout, maxTimeout)
	switch p.Method {
	case "POST", "PUT":
	default:
		v.errorf("push.method", "want POST or PUT, got %q", p.Method)
	}
	for i, l := range p.ExtraLabels {
		name, _, ok := strings.Cut(l, "=")
		if !ok || !labelName.MatchString(name) {
			v.errorf(idx("push.extra_labels", i), "want name=value with a Prometheus label name, got %q", l)
		}
	}
	if p.BearerTokenFile != "" {
		v.readable("push.bearer_token_file", p.BearerTokenFile)
	}
}
