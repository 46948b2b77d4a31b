package tlsutil

import (
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
	"time"

	"github.com/meshnode/meshnode/internal/paths"
)

// SelfSigned describes one persisted self-signed server certificate.
type SelfSigned struct {
	// Dir holds the two files; it is created (0700) when missing.
	Dir string
	// CertFile and KeyFile are the file names inside Dir.
	CertFile, KeyFile string
	// CommonName names the server in the subject.
	CommonName string
	// Hosts are SANs beside localhost, 127.0.0.1 and ::1 (IPs or DNS names).
	Hosts []string
	// Validity is a new certificate's lifetime; RenewBefore regenerates a
	// certificate that has less than that left (0: only once expired).
	Validity, RenewBefore time.Duration
	// CA marks the certificate as its own CA, so clients can add it to their
	// roots and pin it (the directory); otherwise it is a leaf.
	CA bool
}

// LoadOrCreate returns the certificate in s.Dir, generating a new one when
// it is missing, does not load (also a cert and key from two different
// generations after a crash between the writes), or is due for renewal.
func (s SelfSigned) LoadOrCreate(now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(s.Dir, s.CertFile), filepath.Join(s.Dir, s.KeyFile)
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && c.Leaf != nil &&
		now.Add(s.RenewBefore).Before(c.Leaf.NotAfter) {
		return c, nil
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("creating certificate directory: %w", err)
	}
	certPEM, keyPEM, err := s.Generate(now)
	if err != nil {
		return tls.Certificate{}, err
	}
	// Key first: a crash between the writes leaves a stale cert that fails
	// to pair with the new key, which the next start regenerates.
	if err := paths.WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing TLS key: %w", err)
	}
	if err := paths.WriteFileAtomic(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing TLS certificate: %w", err)
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// Generate makes a fresh P-256 key and a certificate for s valid from an
// hour before now (clock skew) for s.Validity, both PEM-encoded.
func (s SelfSigned) Generate(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generating serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: s.CommonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(s.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if s.CA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.BasicConstraintsValid, tmpl.IsCA = true, true
	}
	for _, h := range s.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}
