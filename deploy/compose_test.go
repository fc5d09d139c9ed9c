package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/accesslog-exporter/accesslog-exporter/internal/testenv"
)

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Hostname    string            `yaml:"hostname"`
	Environment map[string]string `yaml:"environment"`
	Expose      []string          `yaml:"expose"`
	Ports       []string          `yaml:"ports"`
	Volumes     []any             `yaml:"volumes"`
	DependsOn   any               `yaml:"depends_on"`
	Command     []string          `yaml:"command"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

const composeDir = "compose"

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	readYAML(t, filepath.Join(composeDir, "docker-compose.yml"), &c)
	if len(c.Services) == 0 {
		t.Fatal("no services")
	}
	return c
}

// mount is one volumes entry: a bind mount of a path, or a named volume.
type mount struct{ source, target string }

func mounts(t *testing.T, s composeService) []mount {
	var out []mount
	for _, v := range s.Volumes {
		switch v := v.(type) {
		case string:
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Errorf("volume %q: want source:target", v)
				continue
			}
			out = append(out, mount{parts[0], parts[1]})
		case map[string]any:
			out = append(out, mount{str(v, "source"), str(v, "target")})
		}
	}
	return out
}

func isPath(source string) bool {
	return strings.HasPrefix(source, ".") || strings.HasPrefix(source, "/")
}

func TestComposeStructure(t *testing.T) {
	c := loadCompose(t)
	for _, want := range []string{"kafka-1", "kafka-2", "kafka-3", "kafka-init", "nginx", "filebeat", "exporter", "prometheus", "alertmanager", "loki", "grafana"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("no service %s", want)
		}
	}
	hostPorts := map[string]string{}
	for name, s := range c.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("%s: neither image nor build", name)
		}
		if s.Build != nil {
			df := filepath.Join(composeDir, s.Build.Context, s.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s: build: %v", name, err)
			}
		}
		// Every mounted file or folder exists; every named volume is declared.
		for _, m := range mounts(t, s) {
			if isPath(m.source) {
				if _, err := os.Stat(filepath.Join(composeDir, m.source)); err != nil {
					t.Errorf("%s mounts %s: %v", name, m.source, err)
				}
			} else if _, ok := c.Volumes[m.source]; !ok {
				t.Errorf("%s uses volume %s, not declared under volumes:", name, m.source)
			}
		}
		var deps []string
		switch d := s.DependsOn.(type) {
		case []any:
			deps = stringList(d)
		case map[string]any:
			for k := range d {
				deps = append(deps, k)
			}
		}
		for _, d := range deps {
			if _, ok := c.Services[d]; !ok {
				t.Errorf("%s depends on %s, which is not a service", name, d)
			}
		}
		// A published port maps to a port the service says it listens on,
		// and no two services publish the same host port.
		for _, p := range s.Ports {
			parts := strings.Split(p, ":")
			host, ctr := strings.Join(parts[:len(parts)-1], ":"), parts[len(parts)-1]
			if other, dup := hostPorts[host]; dup {
				t.Errorf("%s and %s both publish %s", name, other, host)
			}
			hostPorts[host] = name
			if !slices.Contains(s.Expose, ctr) {
				t.Errorf("%s publishes container port %s, not in its expose %v", name, ctr, s.Expose)
			}
			if !strings.HasPrefix(host, "127.0.0.1:") {
				t.Errorf("%s publishes %s on every interface; want 127.0.0.1", name, host)
			}
		}
	}
}

// Every host:port one service's config names is a service of the file
// that exposes that port: the names in filebeat.yml, exporter.yml,
// prometheus.yml, the Grafana datasources and the Kafka env all agree.
func TestComposeAddressesResolve(t *testing.T) {
	c := loadCompose(t)
	refs := map[string][]string{} // where -> host:port
	addr := regexp.MustCompile(`(?:^|[\s'"\[,@/])([a-z][a-z0-9-]*):(\d{2,5})\b`)
	scan := func(where, text string) {
		for _, m := range addr.FindAllStringSubmatch(text, -1) {
			refs[where] = append(refs[where], m[1]+":"+m[2])
		}
	}
	for _, f := range []string{"exporter.yml", "prometheus/prometheus.yml", "grafana/provisioning/datasources/datasources.yml"} {
		data, err := os.ReadFile(filepath.Join(composeDir, f))
		if err != nil {
			t.Fatal(err)
		}
		scan(f, string(data))
	}
	var fb filebeatConfig
	readYAML(t, "filebeat/filebeat.yml", &fb)
	scan("filebeat.yml", strings.Join(fb.Kafka.Hosts, " "))
	for name, s := range c.Services {
		for k, v := range s.Environment {
			scan(name+" env "+k, " "+v)
		}
	}
	if len(refs) < 5 {
		t.Fatalf("found too few addresses: %v", refs)
	}
	for where, list := range refs {
		for _, hp := range list {
			host, port, _ := strings.Cut(hp, ":")
			if host == "localhost" {
				continue
			}
			s, ok := c.Services[host]
			if !ok {
				t.Errorf("%s: %s is not a compose service", where, hp)
				continue
			}
			if !slices.Contains(s.Expose, port) {
				t.Errorf("%s: %s: service %s exposes %v", where, hp, host, s.Expose)
			}
		}
	}
}

// The brokers in compose hold the same HA invariants as server.properties.
func TestComposeKafkaHA(t *testing.T) {
	c := loadCompose(t)
	ids := map[string]bool{}
	for _, name := range []string{"kafka-1", "kafka-2", "kafka-3"} {
		s := c.Services[name]
		props := map[string]string{}
		for k, v := range s.Environment {
			if p, ok := strings.CutPrefix(k, "KAFKA_"); ok {
				// The apache/kafka image's mapping: _ is ., __ is _, ___ is -.
				p = strings.ReplaceAll(p, "___", "-")
				p = strings.ReplaceAll(p, "__", "\x00")
				p = strings.ReplaceAll(p, "_", ".")
				p = strings.ReplaceAll(p, "\x00", "_")
				props[strings.ToLower(p)] = v
			}
		}
		for _, p := range kafkaDurabilityProblems(props) {
			t.Errorf("%s: %s", name, p)
		}
		ids[props["node.id"]] = true
		if want := "PLAINTEXT://" + name + ":9092"; props["advertised.listeners"] != want {
			t.Errorf("%s advertises %q, want %s", name, props["advertised.listeners"], want)
		}
		if s.Environment["CLUSTER_ID"] == "" {
			t.Errorf("%s: no CLUSTER_ID (the image formats the log dir with it)", name)
		}
	}
	if len(ids) != 3 {
		t.Errorf("node ids %v: want 3 distinct", ids)
	}
}

// Grafana gets the project's dashboards folder and datasources whose uids
// the dashboards use; Prometheus gets the project's rules.
func TestComposeProvisioning(t *testing.T) {
	c := loadCompose(t)
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(composeDir, "grafana/provisioning/dashboards/dashboards.yml"), &prov)
	var dashTarget, provTarget string
	for _, m := range mounts(t, c.Services["grafana"]) {
		switch filepath.Clean(filepath.Join(composeDir, m.source)) {
		case filepath.Clean("../dashboards"):
			dashTarget = m.target
		case filepath.Clean(filepath.Join(composeDir, "grafana/provisioning")):
			provTarget = m.target
		}
	}
	if provTarget != "/etc/grafana/provisioning" {
		t.Errorf("grafana provisioning mounted at %q", provTarget)
	}
	if len(prov.Providers) != 1 || dashTarget == "" || prov.Providers[0].Options.Path != dashTarget {
		t.Errorf("dashboards provider path %v, dashboards/ mounted at %q: want the same", prov.Providers, dashTarget)
	}

	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(composeDir, "grafana/provisioning/datasources/datasources.yml"), &ds)
	uids := map[string]string{}
	for _, d := range ds.Datasources {
		uids[d.UID] = d.Type
	}
	dashboards, _ := filepath.Glob("../dashboards/*.json")
	if len(dashboards) == 0 {
		t.Log("no dashboards/*.json yet: datasource uids not cross-checked")
	}
	for _, f := range dashboards {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var dash any
		if err := json.Unmarshal(data, &dash); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for uid := range datasourceUIDs(dash) {
			if _, ok := uids[uid]; !ok && !strings.HasPrefix(uid, "$") && !strings.HasPrefix(uid, "-- ") && uid != "grafana" {
				t.Errorf("%s uses datasource uid %q; provisioned: %v", f, uid, uids)
			}
		}
	}

	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(composeDir, "prometheus/prometheus.yml"), &prom)
	var rulesTarget string
	for _, m := range mounts(t, c.Services["prometheus"]) {
		if filepath.Clean(filepath.Join(composeDir, m.source)) == filepath.Clean("../prometheus/rules") {
			rulesTarget = m.target
		}
	}
	if rulesTarget == "" || !slices.Contains(prom.RuleFiles, rulesTarget+"/*.yml") {
		t.Errorf("rule_files %v, prometheus/rules mounted at %q", prom.RuleFiles, rulesTarget)
	}
	if !slices.ContainsFunc(prom.ScrapeConfigs, func(s struct {
		JobName string `yaml:"job_name"`
	}) bool {
		return s.JobName == "accesslog-exporter"
	}) {
		t.Errorf("no scrape job accesslog-exporter (the job the rules select)")
	}
	// Alertmanager reads alertmanager.yml from the mounted project folder.
	for _, m := range mounts(t, c.Services["alertmanager"]) {
		if isPath(m.source) && slices.Contains(c.Services["alertmanager"].Command, "--config.file="+m.target+"/alertmanager.yml") {
			if _, err := os.Stat(filepath.Join(composeDir, m.source, "alertmanager.yml")); err != nil {
				t.Errorf("alertmanager: %v", err)
			}
		}
	}
}

// datasourceUIDs collects every "datasource": {"uid": ...} in a dashboard.
func datasourceUIDs(v any) map[string]bool {
	out := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if d, ok := v["datasource"].(map[string]any); ok {
				if uid, ok := d["uid"].(string); ok {
					out[uid] = true
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// The compose site config works with the shipped nginx.conf.
func TestComposeNginxConfigTest(t *testing.T) {
	nginx := lookTool(t, "nginx")
	if _, err := os.Stat("/etc/nginx/mime.types"); err != nil {
		testenv.Missing(t, "deploy-tools", "no /etc/nginx/mime.types (nginx not installed from Debian)")
	}
	dir := t.TempDir()
	conf := nginxSite(t, dir, nil)
	site, err := os.ReadFile(filepath.Join(composeDir, "nginx/default.conf"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "conf.d", "default.conf"), site, 0o644)
	if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "logs", "error.log")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
