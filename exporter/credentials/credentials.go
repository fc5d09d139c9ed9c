// Package credentials reads what a client proves itself with: the TLS
// settings of any destination (Kafka, the log store) and secrets kept in
// files (passwords, bearer tokens), the same way for every component.
package credentials

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// TLS builds the client side of a TLS connection from a config section;
// field is the section's dotted path (e.g. "kafka.tls"), which every error
// names. The files were checked readable by config validation; they are
// read here, at start, so a bad file fails the start, not a request.
func TLS(c config.TLS, field string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", field, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file: %s holds no PEM certificate", field, c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, fmt.Errorf("%s: cert_file and key_file go together", field)
		}
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file: %w", field, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Secret reads a password or token from a file; field is the config key
// that names the file, which an error names.
//
// The one trimming rule: trailing line endings (\n and \r, any number) are
// removed, because editors, `echo` and `kubectl create secret --from-file`
// of an edited file leave them and they are never part of a secret.
// Everything else is kept as written, spaces included: a password may begin
// or end with a blank, and trimming it would make a right password wrong.
func Secret(path, field string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return strings.TrimRight(string(raw), "\r\n"), nil
}
