package tlsutil

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func spec(dir string) SelfSigned {
	return SelfSigned{Dir: filepath.Join(dir, "tls"), CertFile: "c.pem", KeyFile: "k.pem", CommonName: "test server",
		Hosts: []string{"node.example", "10.0.0.5", ""}, Validity: 30 * 24 * time.Hour, RenewBefore: 7 * 24 * time.Hour}
}

func certBytes(t *testing.T, s SelfSigned) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, s.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A generated certificate is persisted (key 0600), reused while valid, and
// names localhost, loopback and the configured hosts.
func TestLoadOrCreate_PersistsAndReuses(t *testing.T) {
	s := spec(t.TempDir())
	c, err := s.LoadOrCreate(t0)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if leaf == nil || leaf.Subject.CommonName != "test server" || leaf.IsCA ||
		!slices.Contains(leaf.DNSNames, "node.example") || !slices.Contains(leaf.DNSNames, "localhost") || len(leaf.IPAddresses) != 3 {
		t.Fatalf("leaf %+v", leaf)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir, s.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	first := certBytes(t, s)
	if _, err := s.LoadOrCreate(t0.Add(20 * 24 * time.Hour)); err != nil || !bytes.Equal(first, certBytes(t, s)) {
		t.Fatalf("valid certificate not reused (%v)", err)
	}
	// Inside the renewal window: a new certificate.
	if _, err := s.LoadOrCreate(t0.Add(24 * 24 * time.Hour)); err != nil || bytes.Equal(first, certBytes(t, s)) {
		t.Fatalf("certificate due for renewal kept (%v)", err)
	}
}

// Without a renewal window the certificate is kept until it expires.
func TestLoadOrCreate_RenewsOnlyWhenExpired(t *testing.T) {
	s := spec(t.TempDir())
	s.RenewBefore = 0
	if _, err := s.LoadOrCreate(t0); err != nil {
		t.Fatal(err)
	}
	first := certBytes(t, s)
	if _, err := s.LoadOrCreate(t0.Add(29 * 24 * time.Hour)); err != nil || !bytes.Equal(first, certBytes(t, s)) {
		t.Fatal("certificate replaced before it expired")
	}
	if _, err := s.LoadOrCreate(t0.Add(31 * 24 * time.Hour)); err != nil || bytes.Equal(first, certBytes(t, s)) {
		t.Fatal("expired certificate kept")
	}
}

// A certificate and key from two generations (a crash between the writes)
// do not pair; the next start regenerates instead of failing for good.
func TestLoadOrCreate_MismatchedPairRegenerates(t *testing.T) {
	s := spec(t.TempDir())
	if _, err := s.LoadOrCreate(t0); err != nil {
		t.Fatal(err)
	}
	otherCert, _, err := s.Generate(t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, s.CertFile), otherCert, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := s.LoadOrCreate(t0)
	if err != nil || c.Leaf == nil {
		t.Fatalf("mismatched pair: %v", err)
	}
	if bytes.Equal(certBytes(t, s), otherCert) {
		t.Fatal("mismatched certificate kept")
	}
}

// A CA certificate verifies as its own root for the names it carries: the
// directory's clients pin it that way.
func TestGenerate_CAIsItsOwnRoot(t *testing.T) {
	s := spec(t.TempDir())
	s.CA = true
	c, err := s.LoadOrCreate(t0)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Leaf.IsCA || c.Leaf.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("not a CA: %+v", c.Leaf)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Leaf)
	for _, name := range []string{"localhost", "node.example", "10.0.0.5", "127.0.0.1"} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: t0}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
