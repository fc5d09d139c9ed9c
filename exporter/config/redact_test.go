package config

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://user:SECRET@loki:3100", "http://***@loki:3100"},
		{"https://TOKEN@vm:8428/api/v1/import/prometheus?extra_label=a@b", "https://***@vm:8428/api/v1/import/prometheus?extra_label=a@b"},
		{"http://u:p@ss@host/x", "http://***@host/x"},
		{"http://loki:3100/loki/api/v1/push", "http://loki:3100/loki/api/v1/push"},
		{"http://host/path@x", "http://host/path@x"},
		{"user:SECRET@host:3100", "***@host:3100"},
		{"http://us er:SE CRET@host", "http://***@host"}, // does not parse as a URL
		{"", ""},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// check-config prints the effective config; credentials in URLs must not
// appear in it, nor in the errors about those URLs (issue 13, defect 5).
func TestStringRedactsURLs(t *testing.T) {
	c, err := Parse("config.yml", []byte(`loki:
  url: http://user:SECRET1@loki:3100
push:
  url: https://pusher:SECRET2@vm:8428/api/v1/import/prometheus
tracing:
  endpoint: http://SECRET3@otel:4318
`))
	if err != nil {
		t.Fatal(err)
	}
	out := c.String()
	for _, want := range []string{"url: http://***@loki:3100", "url: https://***@vm:8428/api/v1/import/prometheus", "endpoint: http://***@otel:4318"} {
		if !strings.Contains(out, want) {
			t.Errorf("String() lacks %q", want)
		}
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("String() shows a credential:\n%s", out)
	}
	if c.Loki.URL != "http://user:SECRET1@loki:3100" {
		t.Errorf("String() changed the config itself: loki.url = %q", c.Loki.URL)
	}

	_, err = Parse("config.yml", []byte("loki:\n  url: ftp://user:SECRET4@loki\npush:\n  url: gopher://SECRET5@x\ntracing:\n  endpoint: x://a:SECRET6@y\n"))
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), `loki.url: want an http:// or https:// URL, got "ftp://***@loki"`) {
		t.Errorf("errors about URLs with credentials:\n%v", err)
	}
}
