package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's sample config is what users copy first: it must load. Its
// secret and CA paths are swapped for files made here.
func TestReadmeSampleConfig(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, "```yaml\nkafka:")
	if i < 0 {
		t.Fatal("README has no yaml sample starting with kafka:")
	}
	sample := s[i+len("```yaml\n"):]
	sample = sample[:strings.Index(sample, "```")]
	dir := t.TempDir()
	ca, pw := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "pw")
	write(t, ca, "not checked for PEM at load time\n")
	write(t, pw, "secret\n")
	sample = strings.ReplaceAll(sample, "/etc/accesslog-exporter/ca.pem", ca)
	sample = strings.ReplaceAll(sample, "/etc/accesslog-exporter/kafka-password", pw)
	file := filepath.Join(dir, "exporter.yml")
	write(t, file, sample)
	t.Setenv("POD_NAME", "exporter-0") // kafka.instance_id: ${POD_NAME}
	if code, _, errs := runCmd(t, "", "check-config", file); code != 0 {
		t.Errorf("README sample config does not load:\n%s", errs)
	}
}
