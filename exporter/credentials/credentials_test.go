package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// The one trimming rule, for every secret file: trailing line endings go,
// everything else (blanks included) is part of the secret.
func TestSecretTrimsTrailingLineEndingsOnly(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"as written", "s3cret", "s3cret"},
		{"echo's newline", "s3cret\n", "s3cret"},
		{"windows line ending", "s3cret\r\n", "s3cret"},
		{"several line endings", "s3cret\n\n\r\n", "s3cret"},
		{"trailing blank kept", "s3cret \n", "s3cret "},
		{"trailing tab kept", "s3cret\t", "s3cret\t"},
		{"leading blank kept", " s3cret\n", " s3cret"},
		{"inner newline kept", "s3\ncret\n", "s3\ncret"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := Secret(p, "loki.auth.password_file")
			if err != nil || got != tc.want {
				t.Errorf("Secret(%q) = %q, %v; want %q, nil", tc.file, got, err, tc.want)
			}
		})
	}
}

func TestSecretMissingFileNamesField(t *testing.T) {
	_, err := Secret(filepath.Join(t.TempDir(), "nope"), "push.bearer_token_file")
	if err == nil || !strings.HasPrefix(err.Error(), "push.bearer_token_file: ") {
		t.Errorf("error %v does not begin with the field", err)
	}
}

func TestTLSErrorsNameField(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  config.TLS
		want string
	}{
		{"missing CA", config.TLS{CAFile: filepath.Join(dir, "missing.pem")}, "kafka.tls.ca_file: open "},
		{"CA not PEM", config.TLS{CAFile: notPEM}, "kafka.tls.ca_file: " + notPEM + " holds no PEM certificate"},
		{"cert without key", config.TLS{CertFile: notPEM}, "kafka.tls: cert_file and key_file go together"},
		{"bad key pair", config.TLS{CertFile: notPEM, KeyFile: notPEM}, "kafka.tls.cert_file: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := TLS(tc.cfg, "kafka.tls")
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("TLS() error = %v, want one beginning %q", err, tc.want)
			}
		})
	}
	tc, err := TLS(config.TLS{ServerName: "kafka-1", InsecureSkipVerify: true}, "loki.tls")
	if err != nil || tc.ServerName != "kafka-1" || !tc.InsecureSkipVerify || tc.MinVersion == 0 {
		t.Errorf("TLS() = %+v, %v; want server name, skip verify and a minimum version kept", tc, err)
	}
}
