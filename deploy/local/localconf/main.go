// Command localconf writes the local stack's Prometheus and Alertmanager
// configuration from the project's own files, so that what the stack runs is
// what ships: prometheus/prometheus.yml and prometheus/rules/*.yml,
// alertmanager/alertmanager.yml and its templates.
//
// Only addresses and time are changed:
//   - scrape and evaluation intervals become 1s; the exporter job reads its
//     targets from a file_sd file (the scenarios add and remove replicas);
//     Alertmanager and Prometheus are the local ones;
//   - every duration in the rules (range selectors, subqueries, offsets,
//     for:, keep_firing_for:, group interval:) is divided by -factor, so an
//     alert written "for: 5m over [5m]" behaves the same, 30 times faster;
//   - every Alertmanager receiver becomes a webhook to the local recorder
//     (URL path = receiver name), with send_resolved; routing, grouping and
//     inhibition are kept, the route timers divided by -factor;
//   - Loki (deploy/compose/loki/loki.yml) listens on loopback with its data
//     under -out, and may return every line of a scenario to a query
//     (max_entries_limit_per_query); its ingestion limits are the shipped ones.
//
// Thresholds and label logic are never touched.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

func main() {
	repo := flag.String("repo", ".", "root of the repository")
	out := flag.String("out", "deploy/local/.run", "output folder: prometheus/ and alertmanager/ are written under it")
	factor := flag.Float64("factor", 30, "time scale: every duration in rules and route timers is divided by it")
	minRange := flag.Duration("min-range", 3*time.Second, "shortest range selector after scaling (a few scrapes)")
	alertmanager := flag.String("alertmanager", "127.0.0.1:29193", "Alertmanager address")
	self := flag.String("prometheus", "127.0.0.1:29190", "Prometheus's own address")
	webhook := flag.String("webhook", "http://127.0.0.1:29195", "base URL of the alert recorder")
	lokiHTTP := flag.String("loki", "127.0.0.1:29100", "Loki's HTTP address (its gRPC port is the next one)")
	flag.Parse()
	s := scaler{factor: *factor, minRange: *minRange}

	pdir := filepath.Join(*out, "prometheus")
	if err := os.MkdirAll(filepath.Join(pdir, "rules"), 0o755); err != nil {
		log.Fatal(err)
	}
	rules, err := filepath.Glob(filepath.Join(*repo, "prometheus", "rules", "*.yml"))
	if err != nil || len(rules) == 0 {
		log.Fatalf("localconf: no rule files under %s/prometheus/rules", *repo)
	}
	for _, f := range rules {
		b, err := os.ReadFile(f)
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pdir, "rules", filepath.Base(f)), []byte(s.rules(string(b))), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	pcfg, err := prometheusConfig(filepath.Join(*repo, "prometheus", "prometheus.yml"), *alertmanager, *self)
	if err != nil {
		log.Fatalf("localconf: %v", err)
	}
	write(filepath.Join(pdir, "prometheus.yml"), pcfg)

	adir := filepath.Join(*out, "alertmanager")
	if err := os.MkdirAll(adir, 0o755); err != nil {
		log.Fatal(err)
	}
	acfg, err := alertmanagerConfig(filepath.Join(*repo, "alertmanager"), *webhook, s)
	if err != nil {
		log.Fatalf("localconf: %v", err)
	}
	write(filepath.Join(adir, "alertmanager.yml"), acfg)

	ldir, err := filepath.Abs(filepath.Join(*out, "loki"))
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(ldir, 0o755); err != nil {
		log.Fatal(err)
	}
	lcfg, err := lokiConfig(filepath.Join(*repo, "deploy", "compose", "loki", "loki.yml"), *lokiHTTP, ldir)
	if err != nil {
		log.Fatalf("localconf: %v", err)
	}
	write(filepath.Join(ldir, "loki.yml"), lcfg)
}

// lokiConfig is the project's Loki config on loopback: its listen addresses
// and the data paths (everything under /loki) moved under dir.
func lokiConfig(path, httpAddr, dir string) (doc, error) {
	d, err := load(path)
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return nil, err
	}
	p, _ := strconv.Atoi(port)
	srv, _ := d["server"].(doc)
	if srv == nil {
		srv = doc{}
	}
	srv["http_listen_address"], srv["http_listen_port"] = host, p
	srv["grpc_listen_address"], srv["grpc_listen_port"] = host, p+1
	d["server"] = srv
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case doc:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case time.Time:
			// YAML reads schema_config's "from: 2024-01-01" as a time; Loki
			// wants the day back.
			return x.Format("2006-01-02")
		case string:
			if x == "/loki" || strings.HasPrefix(x, "/loki/") {
				return dir + strings.TrimPrefix(x, "/loki")
			}
		}
		return v
	}
	walk(d)
	lim, _ := d["limits_config"].(doc)
	if lim == nil {
		lim = doc{}
	}
	// The scenarios read every line of a run back to find duplicates.
	lim["max_entries_limit_per_query"] = 1000000
	d["limits_config"] = lim
	return d, nil
}

func write(path string, v any) {
	b, err := yaml.Marshal(v)
	if err != nil {
		log.Fatal(err)
	}
	hdr := "# Generated by deploy/local/localconf from the project's files; do not edit.\n"
	if err := os.WriteFile(path, append([]byte(hdr), b...), 0o644); err != nil {
		log.Fatal(err)
	}
}

type scaler struct {
	factor   float64
	minRange time.Duration
}

func (s scaler) scale(d string, min time.Duration) string {
	md, err := model.ParseDuration(d)
	if err != nil {
		return d
	}
	v := time.Duration(float64(md) / s.factor).Round(time.Millisecond)
	if v < min {
		v = min
	}
	return model.Duration(v).String()
}

var (
	durRE    = `[0-9]+(?:ms|[smhdwy])(?:[0-9]+(?:ms|[smhdwy]))*`
	rangeRE  = regexp.MustCompile(`\[(` + durRE + `)(?::(` + durRE + `)?)?\]`)
	offsetRE = regexp.MustCompile(`\boffset\s+(-?)(` + durRE + `)`)
	forRE    = regexp.MustCompile(`(?m)^(\s*(?:for|keep_firing_for|interval):\s*)(` + durRE + `)\s*$`)
)

// rules scales the durations of a rule file's text, leaving every other
// byte as it is.
func (s scaler) rules(text string) string {
	text = rangeRE.ReplaceAllStringFunc(text, func(m string) string {
		g := rangeRE.FindStringSubmatch(m)
		r := "[" + s.scale(g[1], s.minRange)
		if strings.Contains(m, ":") {
			r += ":"
			if g[2] != "" {
				r += s.scale(g[2], time.Second)
			}
		}
		return r + "]"
	})
	text = offsetRE.ReplaceAllStringFunc(text, func(m string) string {
		g := offsetRE.FindStringSubmatch(m)
		return "offset " + g[1] + s.scale(g[2], time.Second)
	})
	return forRE.ReplaceAllStringFunc(text, func(m string) string {
		g := forRE.FindStringSubmatch(m)
		return g[1] + s.scale(g[2], time.Second)
	})
}

type doc = map[string]any

func load(path string) (doc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d doc
	if err := yaml.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return d, nil
}

func prometheusConfig(path, am, self string) (doc, error) {
	d, err := load(path)
	if err != nil {
		return nil, err
	}
	g, _ := d["global"].(doc)
	if g == nil {
		g = doc{}
	}
	g["scrape_interval"], g["evaluation_interval"], g["scrape_timeout"] = "1s", "1s", "1s"
	d["global"] = g
	if a, ok := d["alerting"].(doc); ok {
		a["alertmanagers"] = []any{doc{"static_configs": []any{doc{"targets": []any{am}}}}}
	}
	d["rule_files"] = []any{"rules/*.yml"}
	var jobs []any
	sc, _ := d["scrape_configs"].([]any)
	for _, j := range sc {
		job, _ := j.(doc)
		if job == nil {
			continue
		}
		job["scrape_interval"], job["scrape_timeout"] = "1s", "1s"
		switch job["job_name"] {
		case "accesslog-exporter":
			delete(job, "static_configs")
			delete(job, "kubernetes_sd_configs")
			job["file_sd_configs"] = []any{doc{"files": []any{"exporters.json"}, "refresh_interval": "1s"}}
		case "alertmanager":
			job["static_configs"] = []any{doc{"targets": []any{am}}}
		case "prometheus":
			job["static_configs"] = []any{doc{"targets": []any{self}}}
		default:
			log.Printf("localconf: scrape job %v dropped: nothing local to scrape", job["job_name"])
			continue
		}
		jobs = append(jobs, job)
	}
	d["scrape_configs"] = jobs
	return d, nil
}

// alertmanagerConfig turns the project's Alertmanager config into a local
// one; without one (not written yet) it routes everything to one webhook.
func alertmanagerConfig(dir, webhook string, s scaler) (doc, error) {
	path := filepath.Join(dir, "alertmanager.yml")
	d, err := load(path)
	if os.IsNotExist(err) {
		log.Printf("localconf: %s missing: every alert goes to one webhook receiver", path)
		d = doc{"route": doc{"receiver": "default", "group_by": []any{"alertname", "job"}}, "receivers": []any{doc{"name": "default"}}}
	} else if err != nil {
		return nil, err
	}
	if g, ok := d["global"].(doc); ok {
		// Keep only what is not a delivery setting for a real channel.
		for k := range g {
			if k != "resolve_timeout" {
				delete(g, k)
			}
		}
		if v, ok := g["resolve_timeout"].(string); ok {
			g["resolve_timeout"] = s.scale(v, time.Second)
		}
	}
	var walk func(r doc)
	walk = func(r doc) {
		for _, k := range []string{"group_wait", "group_interval", "repeat_interval"} {
			if v, ok := r[k].(string); ok {
				r[k] = s.scale(v, time.Second)
			}
		}
		if rs, ok := r["routes"].([]any); ok {
			for _, c := range rs {
				if cd, ok := c.(doc); ok {
					walk(cd)
				}
			}
		}
	}
	route, _ := d["route"].(doc)
	if route == nil {
		return nil, fmt.Errorf("%s: no route", path)
	}
	// Timers missing at the top level default to 30s/5m/4h in Alertmanager:
	// write them so that they scale too.
	for k, v := range map[string]string{"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"} {
		if _, ok := route[k]; !ok {
			route[k] = v
		}
	}
	walk(route)
	rs, _ := d["receivers"].([]any)
	for _, r := range rs {
		rd, _ := r.(doc)
		if rd == nil {
			continue
		}
		name, _ := rd["name"].(string)
		for k := range rd {
			if k != "name" {
				delete(rd, k)
			}
		}
		rd["webhook_configs"] = []any{doc{"url": strings.TrimRight(webhook, "/") + "/" + name, "send_resolved": true}}
	}
	if ts, ok := d["templates"].([]any); ok {
		for i, t := range ts {
			if p, ok := t.(string); ok && !filepath.IsAbs(p) {
				abs, _ := filepath.Abs(filepath.Join(dir, p))
				ts[i] = abs
			}
		}
	}
	return d, nil
}
