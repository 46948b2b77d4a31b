package directory

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"github.com/meshnode/meshnode/internal/tlsutil"
)

// ACMEConfig gets the directory's certificate from an ACME CA (RFC 8555,
// e.g. Let's Encrypt) through internal/tlsutil's ACME (autocert, TLS-ALPN-01
// on the directory's own TLS listener, so the CA must reach it on port 443
// of each domain). Certificates and the account key are cached in
// <StateDir>/acme (0700) and renewed before expiry.
type ACMEConfig struct {
	// Domains are the DNS names to get certificates for; only these are
	// ever requested (autocert's host policy), whatever SNI a client sends.
	Domains []string
	// DirectoryURL is the CA's ACME directory; empty: Let's Encrypt.
	DirectoryURL string
	// Email is the account contact (optional).
	Email string
	// HTTPClient talks to the CA; nil: a default client.
	HTTPClient *http.Client
}

// acmeCacheDir is where certificates and the account key are kept.
func acmeCacheDir(stateDir string) string { return tlsutil.ACMECacheDir(stateDir) }

func (a *ACMEConfig) shared(stateDir string) *tlsutil.ACME {
	return &tlsutil.ACME{Domains: a.Domains, DirectoryURL: a.DirectoryURL, Email: a.Email,
		StateDir: stateDir, HTTPClient: a.HTTPClient}
}

func (a *ACMEConfig) validate(c *Config) error {
	if len(a.Domains) == 0 {
		return nil
	}
	switch {
	case c.Dev:
		return errors.New("directory: ACME certificates need a public directory; drop --dev (dev mode is plaintext)")
	case c.TLSCertFile != "":
		return errors.New("directory: set either ACME domains or a TLS certificate file, not both")
	}
	if err := a.shared(c.StateDir).Validate(); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	return nil
}

// acmeTLSConfig is the listener's TLS configuration with ACME.
func (s *Server) acmeTLSConfig() *tls.Config {
	return tlsutil.ServerConfig(s.cfg.ACME.shared(s.cfg.StateDir).Manager())
}
