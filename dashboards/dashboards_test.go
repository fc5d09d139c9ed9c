package dashboards

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v2"
)

// dashboard is the part of Grafana's JSON model the tests read.
type dashboard struct {
	file          string
	Title         string  `json:"title"`
	UID           *string `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []target    `json:"targets"`
	Panels     []panel     `json:"panels"` // collapsed rows
}

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Instant    bool        `json:"instant"`
	Datasource *datasource `json:"datasource"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
}

// query is one PromQL expression of a dashboard, named for test output.
type query struct {
	name    string // file: panel title [refId]
	expr    string // as written, with Grafana variables
	instant bool
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	var ds []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = f
		ds = append(ds, d)
	}
	return ds
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func isLoki(p panel, tg target) bool {
	ds := tg.Datasource
	if ds == nil {
		ds = p.Datasource
	}
	return ds != nil && ds.Type == "loki"
}

// promQueries returns every PromQL expression of the dashboards: panel
// targets on the Prometheus data source, and the label_values() selectors of
// query variables.
func promQueries(t *testing.T, ds []dashboard) []query {
	t.Helper()
	var qs []query
	for _, d := range ds {
		for _, p := range allPanels(d.Panels) {
			for _, tg := range p.Targets {
				if isLoki(p, tg) {
					continue
				}
				qs = append(qs, query{name: d.file + ": " + p.Title + " [" + tg.RefID + "]", expr: tg.Expr, instant: tg.Instant})
			}
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			sel, ok := labelValuesSelector(t, v)
			if !ok {
				t.Errorf("%s: variable %s: want label_values(selector, label)", d.file, v.Name)
				continue
			}
			qs = append(qs, query{name: d.file + ": variable " + v.Name, expr: sel, instant: true})
		}
	}
	return qs
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

func labelValuesSelector(t *testing.T, v variable) (string, bool) {
	var q struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &q); err != nil {
		if err := json.Unmarshal(v.Query, &q.Query); err != nil {
			t.Errorf("variable %s: query: %v", v.Name, err)
			return "", false
		}
	}
	m := labelValuesRE.FindStringSubmatch(strings.TrimSpace(q.Query))
	if m == nil {
		return "", false
	}
	return m[1], true
}

// grafanaVars are the values substituted for Grafana's variables: the
// built-in intervals, and "match anything" for the dashboards' own
// multi-value variables (Grafana writes All as the allValue, ".+").
func substitute(expr string, rateInterval, rang string) string {
	r := strings.NewReplacer(
		"$__rate_interval", rateInterval, "${__rate_interval}", rateInterval,
		"$__interval", "15s", "${__interval}", "15s",
		"$__range", rang, "${__range}", rang,
	)
	expr = r.Replace(expr)
	return grafanaVarRE.ReplaceAllString(expr, ".+")
}

var grafanaVarRE = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

func parse(expr string) (parser.Expr, error) {
	return parser.NewParser(parser.Options{}).ParseExpr(expr)
}

// metricNames lists the metric names an expression selects.
func metricNames(e parser.Expr) []string {
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

func TestDashboardsAreWellFormed(t *testing.T) {
	ds := loadDashboards(t)
	titles := map[string]bool{}
	for _, d := range ds {
		t.Run(d.file, func(t *testing.T) {
			if d.Title == "" || titles[d.Title] {
				t.Errorf("title %q empty or repeated", d.Title)
			}
			titles[d.Title] = true
			if d.SchemaVersion < 39 {
				t.Errorf("schemaVersion %d, want a current one (>= 39)", d.SchemaVersion)
			}
			if d.UID != nil {
				t.Errorf("uid %q: leave it null so that an import never collides", *d.UID)
			}
			vars := map[string]variable{}
			for _, v := range d.Templating.List {
				vars[v.Name] = v
			}
			if v, ok := vars["datasource"]; !ok || v.Type != "datasource" {
				t.Errorf("want a datasource variable named datasource")
			}
			ids := map[int]bool{}
			lokiPanels := 0
			for _, p := range allPanels(d.Panels) {
				if ids[p.ID] {
					t.Errorf("panel id %d repeated", p.ID)
				}
				ids[p.ID] = true
				if p.Type == "row" {
					continue
				}
				if p.Title == "" {
					t.Errorf("panel %d has no title", p.ID)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				check := func(ds *datasource) {
					if ds != nil && !strings.HasPrefix(ds.UID, "${") {
						t.Errorf("panel %q: data source uid %q is hard-coded; use a variable", p.Title, ds.UID)
					}
				}
				check(p.Datasource)
				for _, tg := range p.Targets {
					check(tg.Datasource)
					if isLoki(p, tg) {
						lokiPanels++
						if _, ok := vars["loki"]; !ok {
							t.Errorf("panel %q queries Loki but there is no loki variable", p.Title)
						}
						if !strings.Contains(tg.Expr, `vhost=~"$vhost"`) {
							t.Errorf("panel %q: Loki query %q should select the chosen vhosts", p.Title, tg.Expr)
						}
					}
				}
			}
		})
	}
}

func TestQueriesParse(t *testing.T) {
	qs := promQueries(t, loadDashboards(t))
	if len(qs) < 20 {
		t.Fatalf("only %d queries found; is the JSON model read right?", len(qs))
	}
	for _, q := range qs {
		if strings.TrimSpace(q.expr) == "" {
			t.Errorf("%s: empty query", q.name)
			continue
		}
		e := substitute(q.expr, "5m", "1h")
		if _, err := parse(e); err != nil {
			t.Errorf("%s: %v\n%s", q.name, err, e)
		}
	}
	t.Logf("%d PromQL queries parse", len(qs))
}

// recordedNames are the metric names the recording rules of
// prometheus/rules produce; dashboards may use them.
func recordedNames(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../prometheus/rules/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	names := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Groups []struct {
				Rules []struct {
					Record string `yaml:"record"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					names[r.Record] = true
				}
			}
		}
	}
	return names
}

func sortedKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ruleExprs returns the expr of every rule of a rule file.
func ruleExprs(t *testing.T, b []byte) []string {
	t.Helper()
	var rf struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

// The latency panels ask Grafana for exemplars, and the provisioned
// Prometheus datasource turns the exporter's exemplar labels into links to
// the line in Loki: the path from a slow bucket to the very line.
func TestExemplarLinks(t *testing.T) {
	raw, err := os.ReadFile("nginx-traffic.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr     string `json:"expr"`
				Exemplar bool   `json:"exemplar"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range d.Panels {
		if p.Type != "timeseries" && p.Type != "heatmap" {
			continue
		}
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, "_duration_seconds") {
				n++
				if !tg.Exemplar {
					t.Errorf("panel %q: latency query without exemplars", p.Title)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no latency panel found")
	}
	ds, err := os.ReadFile("../deploy/compose/grafana/provisioning/datasources/datasources.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"exemplarTraceIdDestinations:", "- name: trace_id", "- name: request_id", "derivedFields:"} {
		if !strings.Contains(string(ds), want) {
			t.Errorf("datasources.yml lacks %q", want)
		}
	}
}
