package deploy

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// parseUnit reads a systemd unit into section -> key -> values (a key may
// repeat, e.g. SystemCallFilter).
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", path, n, line)
			}
			unit[section][k] = append(unit[section][k], v)
		}
	}
	return unit
}

func TestSystemdUnit(t *testing.T) {
	unit := parseUnit(t, "systemd/accesslog-exporter.service")
	svc := unit["Service"]
	for k, want := range map[string]string{
		"DynamicUser":           "yes",
		"ProtectSystem":         "strict",
		"NoNewPrivileges":       "yes",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"Restart":               "on-failure",
		"KillSignal":            "SIGTERM",
		"CapabilityBoundingSet": "",
	} {
		if got := svc[k]; len(got) != 1 || got[0] != want {
			t.Errorf("[Service] %s = %q, want %q", k, got, want)
		}
	}
	if len(unit["Install"]["WantedBy"]) == 0 {
		t.Errorf("no [Install] WantedBy")
	}
	// The environment file the unit reads is the one shipped, and sets what
	// ExecStart uses.
	env := map[string]string{}
	data, err := os.ReadFile("systemd/accesslog-exporter.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = strings.Trim(v, `"`)
		}
	}
	if ef := svc["EnvironmentFile"]; len(ef) != 1 || strings.TrimPrefix(ef[0], "-") != "/etc/default/accesslog-exporter" {
		t.Errorf("EnvironmentFile = %q", ef)
	}
	start := strings.Join(svc["ExecStart"], " ")
	for _, v := range regexp.MustCompile(`\$\{?([A-Z_]+)\}?`).FindAllStringSubmatch(start, -1) {
		if _, ok := env[v[1]]; !ok {
			t.Errorf("ExecStart uses $%s, which accesslog-exporter.env does not set", v[1])
		}
	}
	// Stopping waits for the Loki acknowledgements before the kill.
	stop, err := time.ParseDuration(strings.Join(svc["TimeoutStopSec"], ""))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	cfg := loadExporterConfig(t, "systemd/exporter.yml")
	if stop <= cfg.Loki.ShutdownTimeout {
		t.Errorf("TimeoutStopSec %v <= loki.shutdown_timeout %v: systemd would kill the exporter before it commits", stop, cfg.Loki.ShutdownTimeout)
	}
	if env["CONFIG_FILE"] != "/etc/accesslog-exporter/exporter.yml" {
		t.Errorf("CONFIG_FILE = %q", env["CONFIG_FILE"])
	}
	if out, err := exec.Command("systemd-analyze", "verify", "systemd/accesslog-exporter.service").CombinedOutput(); err == nil {
		t.Logf("systemd-analyze verify: ok %s", out)
	}
}

// The Dockerfile's final image is distroless or scratch, runs as a numeric
// non-root user, and the binary it builds (same flags) is static.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(s, -1)
	if len(froms) < 2 {
		t.Fatalf("want a build stage and a final stage, got %v", froms)
	}
	final := froms[len(froms)-1][1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final image %s: want distroless static or scratch", final)
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(s, -1)
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1][1], "0") || strings.HasPrefix(users[len(users)-1][1], "root") {
		t.Errorf("USER %v: want a non-root numeric user", users)
	}
	if !strings.Contains(s, "CGO_ENABLED=0") || !strings.Contains(s, "./cmd/accesslog-exporter") {
		t.Errorf("the build stage should build ./cmd/accesslog-exporter with CGO_ENABLED=0")
	}
	if m := regexp.MustCompile(`FROM golang:(\d+\.\d+)`).FindStringSubmatch(s); m != nil {
		gomod, _ := os.ReadFile("../go.mod")
		if !regexp.MustCompile(`(?m)^go ` + regexp.QuoteMeta(m[1])).Match(gomod) {
			t.Errorf("builder golang:%s does not match go.mod's go version", m[1])
		}
	}
	if testing.Short() {
		return
	}
	bin := filepath.Join(t.TempDir(), "accesslog-exporter")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/accesslog-exporter")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("binary is dynamically linked (%v): it would not run on distroless static", p.Type)
		}
	}
}
