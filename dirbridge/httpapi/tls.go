package httpapi

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/meshnode/meshnode/internal/tlsutil"
)

// File names of the generated certificate inside the self-signed directory.
const (
	selfSignedCert = "httpapi-cert.pem"
	selfSignedKey  = "httpapi-key.pem"
)

// tlsConfig builds the TLS 1.3-only server config (SEC-TLS-01: TLS 1.3 MUST,
// with ephemeral key exchange, which every TLS 1.3 suite provides).
func tlsConfig(s *settings) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	switch {
	case s.serverTLS != nil:
		c := s.serverTLS.Clone()
		c.MinVersion = tls.VersionTLS13
		return c, nil
	case s.certFile != "":
		cert, err = tls.LoadX509KeyPair(s.certFile, s.keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading TLS certificate: %w", err)
		}
	case s.selfSignedDir != "":
		cert, err = tlsutil.SelfSigned{Dir: s.selfSignedDir, CertFile: selfSignedCert, KeyFile: selfSignedKey,
			CommonName: "meshnode node API", Hosts: s.selfSignedSANs,
			Validity: SelfSignedValidity, RenewBefore: SelfSignedRenewBefore}.LoadOrCreate(s.now())
		if err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("no TLS certificate: set certificate files, a self-signed directory, or the plaintext dev mode on loopback")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}
