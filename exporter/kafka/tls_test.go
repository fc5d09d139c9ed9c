package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serverCert is a broker certificate for 127.0.0.1 signed by ca.
func (ca testCA) serverCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kfake"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca testCA) file(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsCluster is a kfake cluster whose brokers listen with TLS only.
func tlsCluster(t *testing.T, ca testCA) *kfake.Cluster {
	t.Helper()
	return testbed.Cluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.serverCert(t)}, MinVersion: tls.VersionTLS12}))
}

// The documented kafka.tls settings against brokers that serve TLS: the
// consumer verifies the brokers' certificates with kafka.tls.ca_file and
// consumes every record.
func TestConsumeOverTLS(t *testing.T) {
	ca := newCA(t, "test CA")
	c := tlsCluster(t, ca)
	const n = 500
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: fmt.Appendf(nil, "line %d", i)}
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	prod.Close()

	cfg := testConfig(c, "g-tls")
	cfg.TLS = config.KafkaTLS{Enabled: true, TLS: config.TLS{CAFile: ca.file(t)}}
	cnt := newCounter()
	_, stop := start(t, cfg, cnt.processor)
	testbed.WaitFor(t, "every record over TLS", 20*time.Second, func() bool { return cnt.distinct() == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := cnt.distinct(); got != n {
		t.Errorf("consumed %d distinct records over TLS, want %d", got, n)
	}
}

// A CA that did not sign the brokers' certificates fails the handshake with
// an error that names the setting to fix.
func TestTLSWrongCANamesCAFile(t *testing.T) {
	c := tlsCluster(t, newCA(t, "broker CA"))
	cfg := testConfig(c, "g-tls-wrong")
	caFile := newCA(t, "some other CA").file(t)
	cfg.TLS = config.KafkaTLS{Enabled: true, TLS: config.TLS{CAFile: caFile}}
	cons, stop := start(t, cfg, newCounter().processor)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cons.Client().Ping(ctx)
	if err == nil {
		t.Fatal("ping over TLS with the wrong CA succeeded")
	}
	for _, want := range []string{"kafka.tls.ca_file", caFile, "certificate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// /readyz says why the group is not joined, not only that it is not.
	testbed.Eventually(t, 10*time.Second, func() []string {
		if ready, why := cons.Ready(); ready || !strings.Contains(why, "kafka.tls.ca_file") {
			return []string{fmt.Sprintf("Ready() = %v, %q: want not ready, naming kafka.tls.ca_file", ready, why)}
		}
		return nil
	})
}
