package storage_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/s3server/s3test"
	"github.com/dsae/dsae/storage/storetest"
)

// selfSignedCert writes a certificate for 127.0.0.1 and its key as PEM
// files and returns their paths.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dsae test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestClientTLS: over https minio-go sends UNSIGNED-PAYLOAD bodies; a
// multipart round trip must still match, and an untrusted certificate must
// fail at once rather than be retried as a network error.
func TestClientTLS(t *testing.T) {
	certFile, keyFile := selfSignedCert(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t, s3test.Options{AccessKey: storetest.AccessKey, SecretKey: storetest.SecretKey,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	ctx := context.Background()

	cfg := storetest.ClientConfig("https://"+srv.Endpoint, "dsae")
	cfg.CAFile = certFile
	cfg.PartSize = 5 << 20
	c, err := storage.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	src := storetest.NewSeededReader(40, 12<<20)
	if err := c.Put(ctx, "tls.bin", struct{ io.Reader }{src}, 12<<20); err != nil {
		t.Fatal(err)
	}
	rc, err := c.Get(ctx, "tls.bin")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	io.Copy(h, rc)
	rc.Close()
	if !bytes.Equal(h.Sum(nil), src.Sum()) {
		t.Fatal("sha256 over TLS differs")
	}

	untrusted := cfg
	untrusted.CAFile = ""
	untrusted.RetryTimeout = 5 * time.Second // a retried certificate error would end in ErrUnreachable
	u, err := storage.NewClient(untrusted)
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Stat(ctx, "tls.bin")
	if err == nil || errors.Is(err, storage.ErrUnreachable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	plain := cfg
	plain.Endpoint, plain.CAFile = "http://"+srv.Endpoint, ""
	plain.RetryTimeout = 5 * time.Second
	p, _ := storage.NewClient(plain)
	if _, err := p.Stat(ctx, "tls.bin"); err == nil || errors.Is(err, storage.ErrUnreachable) {
		t.Fatalf("plain HTTP to a TLS port: %v", err)
	}
	bad := cfg
	bad.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := storage.NewClient(bad); !errors.Is(err, storage.ErrInvalidConfig) {
		t.Fatalf("missing CA file: %v", err)
	}
}
