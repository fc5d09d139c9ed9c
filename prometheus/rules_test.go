// Package prometheus holds the example Prometheus configuration and the
// rules of accesslog-exporter; its test checks what promtool cannot: that
// every alert is labelled, annotated, documented, routed and unit-tested.
package prometheus

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"
)

const runbookBase = "https://github.com/accesslog-exporter/accesslog-exporter/blob/main/docs/runbooks/"

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alerts(t *testing.T) []rule {
	t.Helper()
	files, err := filepath.Glob("rules/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	var out []rule
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []rule `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.UnmarshalStrict(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					out = append(out, r)
				}
			}
		}
	}
	return out
}

func read(t *testing.T, glob string) string {
	t.Helper()
	files, _ := filepath.Glob(glob)
	if len(files) == 0 {
		t.Fatalf("nothing matches %s", glob)
	}
	var sb strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(b)
	}
	return sb.String()
}

var (
	severities = map[string]bool{"critical": true, "warning": true}
	teams      = map[string]bool{"web": true, "observability": true, "kafka": true}
	sections   = []string{"## Meaning", "## Impact", "## Diagnosis", "## Mitigation"}
)

func TestEveryAlertIsComplete(t *testing.T) {
	as := alerts(t)
	if len(as) < 20 {
		t.Fatalf("only %d alerts", len(as))
	}
	tests := read(t, "tests/*_test.yml")
	routes := read(t, "../alertmanager/routes_test.sh")
	index := read(t, "../docs/alerts.md")
	seen := map[string]bool{}
	for _, a := range as {
		t.Run(a.Alert, func(t *testing.T) {
			if seen[a.Alert] {
				t.Fatalf("alert name used twice")
			}
			seen[a.Alert] = true
			if !severities[a.Labels["severity"]] {
				t.Errorf("severity %q, want critical or warning", a.Labels["severity"])
			}
			if !teams[a.Labels["team"]] {
				t.Errorf("team %q, want one the Alertmanager routes know", a.Labels["team"])
			}
			for _, k := range []string{"summary", "description"} {
				if strings.TrimSpace(a.Annotations[k]) == "" {
					t.Errorf("no %s", k)
				}
			}
			// absent() has no value or labels to show.
			if !strings.Contains(a.Expr, "absent(") && !strings.Contains(a.Annotations["description"], "{{") {
				t.Errorf("description shows no value or label")
			}
			if got, want := a.Annotations["runbook_url"], runbookBase+a.Alert+".md"; got != want {
				t.Errorf("runbook_url %q, want %q", got, want)
			}
			rb, err := os.ReadFile(filepath.Join("..", "docs", "runbooks", a.Alert+".md"))
			if err != nil {
				t.Errorf("runbook: %v", err)
			} else {
				for _, s := range sections {
					if !strings.Contains(string(rb), s) {
						t.Errorf("runbook has no %q section", s)
					}
				}
			}
			// A firing case lists the alert with its labels; a quiet case
			// expects no alert at some time.
			firing := regexp.MustCompile(`alertname: ` + a.Alert + `\n\s+exp_alerts:\n\s+- exp_labels:`)
			quiet := regexp.MustCompile(`alertname: ` + a.Alert + `\n\s+exp_alerts: \[\]`)
			if !firing.MatchString(tests) {
				t.Errorf("no promtool case where it fires")
			}
			if !quiet.MatchString(tests) {
				t.Errorf("no promtool case where it must not fire")
			}
			if !strings.Contains(routes, "alertname="+a.Alert+" ") {
				t.Errorf("no routing case in alertmanager/routes_test.sh")
			}
			if !strings.Contains(index, "["+a.Alert+"](runbooks/"+a.Alert+".md)") {
				t.Errorf("not listed in docs/alerts.md")
			}
		})
	}
	// No runbook without an alert.
	rbs, _ := filepath.Glob("../docs/runbooks/*.md")
	for _, f := range rbs {
		name := strings.TrimSuffix(filepath.Base(f), ".md")
		if !seen[name] && name != "README" {
			t.Errorf("docs/runbooks/%s.md has no alert", name)
		}
	}
}
