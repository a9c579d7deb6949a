// Package authtest builds throw-away certificate authorities and
// certificates for tests of TLS and mutual TLS.
package authtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI holds the PEM files written by MakePKI.
type PKI struct {
	Dir string
	CA  string // the test CA's certificate
	// Node is a certificate for 127.0.0.1 and localhost, signed by CA, usable
	// both to serve and to authenticate as a client (as coordinators do).
	NodeCert, NodeKey string
	// Client is a client-only certificate signed by CA.
	ClientCert, ClientKey string
	// Rogue is a client certificate signed by an unrelated CA.
	RogueCert, RogueKey string
}

// MakePKI writes a fresh CA and certificates into a temporary directory
// that the test removes at its end. Certificates are valid for one hour.
func MakePKI(t testing.TB) PKI {
	t.Helper()
	p := PKI{Dir: t.TempDir()}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(p.Dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	mkCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, k, der
	}
	leaf := func(ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, name string, usage ...x509.ExtKeyUsage) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}, ExtKeyUsage: usage,
			KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kd)
	}
	ca, caKey, caDER := mkCA("dsae test CA")
	p.CA = write("ca.crt", "CERTIFICATE", caDER)
	p.NodeCert, p.NodeKey = leaf(ca, caKey, 2, "node", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	p.ClientCert, p.ClientKey = leaf(ca, caKey, 3, "client", x509.ExtKeyUsageClientAuth)
	rogue, rogueKey, _ := mkCA("rogue CA")
	p.RogueCert, p.RogueKey = leaf(rogue, rogueKey, 4, "rogue", x509.ExtKeyUsageClientAuth)
	return p
}
