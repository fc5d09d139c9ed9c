package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// kubeManifests reads every resource kustomization.yaml lists, by kind.
func kubeManifests(t *testing.T) map[string]map[string]any {
	t.Helper()
	var kust struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
	}
	readYAML(t, "kubernetes/kustomization.yaml", &kust)
	if kust.Namespace == "" {
		t.Errorf("kustomization.yaml sets no namespace")
	}
	objs := map[string]map[string]any{}
	for _, r := range kust.Resources {
		var obj map[string]any
		readYAML(t, filepath.Join("kubernetes", r), &obj)
		kind, _ := obj["kind"].(string)
		if kind == "" || obj["apiVersion"] == nil || str(obj, "metadata", "name") == "" {
			t.Fatalf("%s: want apiVersion, kind and metadata.name", r)
		}
		if _, dup := objs[kind]; dup {
			t.Fatalf("%s: a second %s", r, kind)
		}
		objs[kind] = obj
	}
	// Nothing shipped is left out of the kustomization.
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(kust.Resources, b) {
			t.Errorf("%s is not in kustomization.yaml's resources", f)
		}
	}
	return objs
}

func kubeObject(t *testing.T, kind string) map[string]any {
	t.Helper()
	obj, ok := kubeManifests(t)[kind]
	if !ok {
		t.Fatalf("no %s in deploy/kubernetes", kind)
	}
	return obj
}

func kedaMaxReplicas(t *testing.T) int {
	t.Helper()
	return toInt(t, get(kubeObject(t, "ScaledObject"), "spec", "maxReplicaCount"))
}

func TestKubernetesManifests(t *testing.T) {
	objs := kubeManifests(t)
	dep := objs["Deployment"]
	podLabels := stringMap(get(dep, "spec", "template", "metadata", "labels"))
	matches := func(what string, sel any) {
		t.Helper()
		m := stringMap(sel)
		if len(m) == 0 {
			t.Errorf("%s: empty selector", what)
		}
		for k, v := range m {
			if podLabels[k] != v {
				t.Errorf("%s selects %s=%s; the pods have %s=%q", what, k, v, k, podLabels[k])
			}
		}
	}
	matches("Deployment", get(dep, "spec", "selector", "matchLabels"))
	matches("Service", get(objs["Service"], "spec", "selector"))
	matches("PodDisruptionBudget", get(objs["PodDisruptionBudget"], "spec", "selector", "matchLabels"))
	matches("PodMonitor", get(objs["PodMonitor"], "spec", "selector", "matchLabels"))

	replicas := toInt(t, get(dep, "spec", "replicas"))
	if replicas < 2 {
		t.Errorf("Deployment replicas = %d, want >= 2", replicas)
	}

	containers := list(get(dep, "spec", "template", "spec", "containers"))
	if len(containers) != 1 {
		t.Fatalf("want one container, got %d", len(containers))
	}
	c := containers[0].(map[string]any)
	ports := map[string]int{}
	for _, p := range list(c["ports"]) {
		pm := p.(map[string]any)
		ports[fmt.Sprint(pm["name"])] = toInt(t, pm["containerPort"])
	}
	args := strings.Join(stringList(c["args"]), " ")
	if ports["http-metrics"] != 9717 || !strings.Contains(args, "--web.listen-address=:9717") {
		t.Errorf("container port %v and args %q: want http-metrics 9717 and --web.listen-address=:9717", ports, args)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %q, want %s", probe, got, path)
		}
		if port := fmt.Sprint(get(c, probe, "httpGet", "port")); ports[port] == 0 && port != "9717" {
			t.Errorf("%s port %s is not a container port %v", probe, port, ports)
		}
	}
	if tp := fmt.Sprint(get(objs["Service"], "spec", "ports").([]any)[0].(map[string]any)["targetPort"]); ports[tp] == 0 {
		t.Errorf("Service targetPort %s is not a container port", tp)
	}
	for _, e := range list(get(objs["PodMonitor"], "spec", "podMetricsEndpoints")) {
		if p := fmt.Sprint(e.(map[string]any)["port"]); ports[p] == 0 {
			t.Errorf("PodMonitor port %s is not a container port", p)
		}
	}
	// The rules select job="accesslog-exporter"; the PodMonitor's job is
	// the value of the pod label it names.
	if jl := str(objs["PodMonitor"], "spec", "jobLabel"); podLabels[jl] != "accesslog-exporter" {
		t.Errorf("PodMonitor jobLabel %q gives job %q, want accesslog-exporter (the rules' job)", jl, podLabels[jl])
	}

	// Hardening.
	if get(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
		t.Errorf("pods do not set runAsNonRoot")
	}
	if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Errorf("container securityContext: want readOnlyRootFilesystem and no privilege escalation")
	}

	// The config the pods mount is the ConfigMap's, where --config.file
	// says; and the grace period outlasts the Loki acknowledgement wait.
	cm := objs["ConfigMap"]
	var vol map[string]any
	for _, v := range list(get(dep, "spec", "template", "spec", "volumes")) {
		if vm := v.(map[string]any); str(vm, "configMap", "name") == str(cm, "metadata", "name") {
			vol = vm
		}
	}
	if vol == nil {
		t.Fatalf("the Deployment mounts no volume from ConfigMap %s", str(cm, "metadata", "name"))
	}
	var mountPath string
	for _, m := range list(c["volumeMounts"]) {
		if mm := m.(map[string]any); mm["name"] == vol["name"] {
			mountPath = fmt.Sprint(mm["mountPath"])
		}
	}
	if want := "--config.file=" + mountPath + "/exporter.yml"; !strings.Contains(args, want) {
		t.Errorf("args %q: want %s (the ConfigMap's mount)", args, want)
	}
	cfgPath := filepath.Join(t.TempDir(), "exporter.yml")
	os.WriteFile(cfgPath, []byte(str(cm, "data", "exporter.yml")), 0o644)
	cfg := loadExporterConfig(t, cfgPath)
	grace := time.Duration(toInt(t, get(dep, "spec", "template", "spec", "terminationGracePeriodSeconds"))) * time.Second
	if grace <= cfg.Loki.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %v <= loki.shutdown_timeout %v: pods would be killed before they commit", grace, cfg.Loki.ShutdownTimeout)
	}

	// KEDA scales this Deployment on this group's lag, within the topic's
	// partitions, never below the PDB's tolerance.
	so := objs["ScaledObject"]
	if str(so, "spec", "scaleTargetRef", "name") != str(dep, "metadata", "name") {
		t.Errorf("ScaledObject targets %q, not the Deployment", str(so, "spec", "scaleTargetRef", "name"))
	}
	// One kafka trigger per consumer group the pods run: the metrics path's
	// and the log path's (docs/delivery.md).
	triggers := list(get(so, "spec", "triggers"))
	metricsOn, logsOn := cfg.Sinks()
	var groups []string
	if metricsOn {
		groups = append(groups, cfg.Kafka.Group)
	}
	if logsOn {
		groups = append(groups, cfg.LokiGroup())
	}
	var watched []string
	for _, tr := range triggers {
		trm := tr.(map[string]any)
		if str(trm, "type") != "kafka" {
			t.Errorf("trigger of type %q, want kafka", str(trm, "type"))
			continue
		}
		tm := stringMap(get(trm, "metadata"))
		watched = append(watched, tm["consumerGroup"])
		if tm["topic"] != cfg.Kafka.Topics[0] {
			t.Errorf("KEDA watches topic %q; the exporter's topics are %v", tm["topic"], cfg.Kafka.Topics)
		}
		if tm["bootstrapServers"] != strings.Join(cfg.Kafka.Brokers, ",") {
			t.Errorf("KEDA bootstrapServers %q, the exporter's brokers %v", tm["bootstrapServers"], cfg.Kafka.Brokers)
		}
		if tm["allowIdleConsumers"] != "false" {
			t.Errorf("allowIdleConsumers = %q, want false: replicas beyond the partitions idle", tm["allowIdleConsumers"])
		}
	}
	if !slices.Equal(watched, groups) {
		t.Errorf("KEDA watches groups %v; the exporter's pods run %v", watched, groups)
	}
	if min := toInt(t, get(so, "spec", "minReplicaCount")); min < 2 || min > kedaMaxReplicas(t) {
		t.Errorf("minReplicaCount %d: want 2..maxReplicaCount", min)
	}
	if got := str(objs["PodDisruptionBudget"], "spec", "maxUnavailable"); got != "1" {
		t.Errorf("PDB maxUnavailable = %s, want 1", got)
	}
}

// The PrometheusRule is the rules files, group for group (regenerate with
// scripts/gen-prometheusrule.sh).
func TestPrometheusRuleEqualsRulesFiles(t *testing.T) {
	files, _ := filepath.Glob("../prometheus/rules/*.yml")
	if len(files) == 0 {
		// A skip here would stop comparing silently if the rules moved.
		t.Fatal("no ../prometheus/rules/*.yml: the rules files moved; update this test and scripts/gen-prometheusrule.sh")
	}
	slices.Sort(files)
	var want []any
	for _, f := range files {
		var doc struct {
			Groups []any `yaml:"groups"`
		}
		readYAML(t, f, &doc)
		want = append(want, doc.Groups...)
	}
	pr := kubeObject(t, "PrometheusRule")
	got := list(get(pr, "spec", "groups"))
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w any
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("group %d differs:\n PrometheusRule: %v\n rules files:    %v", i, g, w)
				break
			}
		}
		t.Fatalf("deploy/kubernetes/prometheusrule.yaml differs from prometheus/rules/*.yml: run scripts/gen-prometheusrule.sh")
	}
}

// Small accessors for decoded YAML.

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any, path ...string) string {
	if s := get(v, path...); s != nil {
		return fmt.Sprint(s)
	}
	return ""
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func stringList(v any) []string {
	var out []string
	for _, e := range list(v) {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := map[string]string{}
	for k, e := range m {
		out[k] = fmt.Sprint(e)
	}
	return out
}

func toInt(t *testing.T, v any) int {
	t.Helper()
	n, err := strconv.Atoi(fmt.Sprint(v))
	if err != nil {
		t.Fatalf("want a number, got %v", v)
	}
	return n
}

// The two-Deployment shape (deploy/kubernetes-split): the base Deployment
// runs the metrics path, a second one the log path, each scaled by KEDA on
// its own group's lag; the log Deployment is the base one but for its
// name, labels and role.
func TestKubernetesSplitShape(t *testing.T) {
	base := kubeManifests(t)
	var cm map[string]any = base["ConfigMap"]
	cfgPath := filepath.Join(t.TempDir(), "exporter.yml")
	os.WriteFile(cfgPath, []byte(str(cm, "data", "exporter.yml")), 0o644)
	cfg := loadExporterConfig(t, cfgPath)

	var logsDep, logsSO, metricsDep, metricsSO map[string]any
	readYAML(t, "kubernetes-split/deployment-logs.yaml", &logsDep)
	readYAML(t, "kubernetes-split/scaledobject-logs.yaml", &logsSO)
	readYAML(t, "kubernetes-split/metrics-deployment.yaml", &metricsDep)
	readYAML(t, "kubernetes-split/metrics-scaledobject.yaml", &metricsSO)
	args := func(dep map[string]any) []string {
		return stringList(get(list(get(dep, "spec", "template", "spec", "containers"))[0], "args"))
	}
	baseArgs := args(base["Deployment"])
	if got, want := args(metricsDep), append(slices.Clone(baseArgs), "--roles=metrics"); !slices.Equal(got, want) {
		t.Errorf("metrics Deployment args %v, want %v", got, want)
	}
	if got, want := args(logsDep), append(slices.Clone(baseArgs), "--roles=logs"); !slices.Equal(got, want) {
		t.Errorf("logs Deployment args %v, want %v", got, want)
	}
	group := func(so map[string]any) []string {
		var out []string
		for _, tr := range list(get(so, "spec", "triggers")) {
			out = append(out, stringMap(get(tr, "metadata"))["consumerGroup"])
		}
		return out
	}
	if got := group(metricsSO); !slices.Equal(got, []string{cfg.Kafka.Group}) {
		t.Errorf("metrics ScaledObject watches %v, want [%s]", got, cfg.Kafka.Group)
	}
	if got := group(logsSO); !slices.Equal(got, []string{cfg.LokiGroup()}) {
		t.Errorf("logs ScaledObject watches %v, want [%s]", got, cfg.LokiGroup())
	}
	if str(logsSO, "spec", "scaleTargetRef", "name") != str(logsDep, "metadata", "name") {
		t.Errorf("logs ScaledObject targets %q, not %q", str(logsSO, "spec", "scaleTargetRef", "name"), str(logsDep, "metadata", "name"))
	}
	// Apart from name, component label and role, the log Deployment is the
	// base one: a change to the base must be made to it too.
	norm := func(dep map[string]any) string {
		c := list(get(dep, "spec", "template", "spec", "containers"))[0].(map[string]any)
		c["args"] = slices.DeleteFunc(list(c["args"]), func(a any) bool { return a == "--roles=logs" })
		b, _ := yaml.Marshal(dep)
		s := strings.ReplaceAll(string(b), "accesslog-exporter-logs", "accesslog-exporter")
		return strings.ReplaceAll(s, "component: logs", "component: exporter")
	}
	if a, b := norm(logsDep), norm(base["Deployment"]); a != b {
		t.Errorf("deployment-logs.yaml drifted from deployment.yaml beyond name, labels and role:\n%s\n---\n%s", a, b)
	}
	if path, err := exec.LookPath("kubectl"); err == nil {
		if out, err := exec.Command(path, "kustomize", "kubernetes-split").CombinedOutput(); err != nil {
			t.Errorf("kubectl kustomize kubernetes-split: %v\n%s", err, out)
		}
	}
}
