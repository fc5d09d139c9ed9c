package deploy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

func loadExporterConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return cfg
}

// Every exporter config deploy/ ships loads and validates as the exporter
// itself would (accesslog-exporter check-config), including the one inside
// the Kubernetes ConfigMap.
func TestExporterConfigsLoad(t *testing.T) {
	files := []string{"systemd/exporter.yml", "compose/exporter.yml"}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			cfg := loadExporterConfig(t, f)
			if len(cfg.Kafka.Brokers) != 3 {
				t.Errorf("kafka.brokers = %v, want the 3 brokers", cfg.Kafka.Brokers)
			}
			if cfg.Loki.URL == "" {
				t.Errorf("loki.url empty: the deployed system forwards lines to Loki")
			}
		})
	}
	t.Run("kubernetes ConfigMap", func(t *testing.T) {
		cm := kubeObject(t, "ConfigMap")
		data, _ := cm["data"].(map[string]any)
		body, ok := data["exporter.yml"].(string)
		if !ok {
			t.Fatalf("ConfigMap has no data.exporter.yml")
		}
		p := filepath.Join(t.TempDir(), "exporter.yml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := loadExporterConfig(t, p)
		if len(cfg.Kafka.Brokers) == 0 || cfg.Loki.URL == "" {
			t.Errorf("ConfigMap config: brokers %v, loki.url %q", cfg.Kafka.Brokers, cfg.Loki.URL)
		}
	})
}
