// Package kafkaclient builds the options of a franz-go client from the kafka
// section of the config, shared by the consumer and the health poller.
package kafkaclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/credentials"
)

// Opts turns the kafka section's connection settings (brokers, client id,
// TLS, SASL) into client options: what every client of the cluster needs,
// the consumer and the health poller alike. Secrets are read here, at
// start, so a missing file fails the start with the field named.
func Opts(cfg config.Kafka) ([]kgo.Opt, error) {
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("kafka.brokers: no brokers configured")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}
	if cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(cfg.ClientID))
	}
	if cfg.TLS.Enabled || cfg.TLS.CAFile != "" || cfg.TLS.CertFile != "" {
		tc, err := credentials.TLS(cfg.TLS.TLS, "kafka.tls")
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.Dialer(tlsDialer(tc, cfg.TLS.CAFile)))
	}
	if cfg.SASL.Mechanism != "" {
		m, err := saslMechanism(cfg.SASL)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// tlsDialer dials as kgo.DialTLSConfig does (server name from the broker's
// host unless set), and names the setting to fix when a broker's
// certificate does not verify: otherwise all the operator sees is a group
// never joined.
func tlsDialer(tc *tls.Config, caFile string) func(ctx context.Context, network, host string) (net.Conn, error) {
	trusted := "the system's roots (kafka.tls.ca_file is not set)"
	if caFile != "" {
		trusted = caFile
	}
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		c := tc.Clone()
		if c.ServerName == "" {
			server, _, err := net.SplitHostPort(host)
			if err != nil {
				return nil, fmt.Errorf("kafka: broker address %q: %w", host, err)
			}
			c.ServerName = server
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: c}
		conn, err := d.DialContext(ctx, network, host)
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("kafka.tls.ca_file: broker %s presents a certificate not signed by %s: %w", host, trusted, err)
		}
		return conn, err
	}
}

func saslMechanism(c config.SASL) (sasl.Mechanism, error) {
	if c.Username == "" {
		return nil, fmt.Errorf("kafka.sasl.username: required when kafka.sasl.mechanism is %s", c.Mechanism)
	}
	if c.PasswordFile == "" {
		return nil, fmt.Errorf("kafka.sasl.password_file: required when kafka.sasl.mechanism is %s", c.Mechanism)
	}
	pass, err := credentials.Secret(c.PasswordFile, "kafka.sasl.password_file")
	if err != nil {
		return nil, err
	}
	switch strings.ToUpper(c.Mechanism) {
	case "PLAIN":
		return plain.Auth{User: c.Username, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: c.Username, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: c.Username, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism: want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty for none, got %q", c.Mechanism)
}
