package directory

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACMEConfig gets the directory's certificate from an ACME CA (RFC 8555,
// e.g. Let's Encrypt) with golang.org/x/crypto/acme/autocert, answering
// TLS-ALPN-01 challenges on the directory's own TLS listener (so the CA
// must reach it on port 443 of each domain). Certificates and the account
// key are cached in <StateDir>/acme (0700) and renewed before expiry.
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
func acmeCacheDir(stateDir string) string { return filepath.Join(stateDir, "acme") }

func (a *ACMEConfig) validate(c *Config) error {
	if len(a.Domains) == 0 {
		return nil
	}
	switch {
	case c.Dev:
		return errors.New("directory: ACME certificates need a public directory; drop --dev (dev mode is plaintext)")
	case c.TLSCertFile != "":
		return errors.New("directory: set either ACME domains or a TLS certificate file, not both")
	case c.StateDir == "":
		return errors.New("directory: ACME needs a state directory for its certificate cache")
	}
	for _, d := range a.Domains {
		// autocert refuses names without a dot, and IPs cannot be validated.
		if !strings.Contains(strings.Trim(d, "."), ".") || strings.ContainsAny(d, ":/ ") {
			return fmt.Errorf("directory: ACME domain %q is not a DNS name like dir.example.org", d)
		}
	}
	return nil
}

// acmeTLSConfig is the listener's TLS configuration with ACME.
func (s *Server) acmeTLSConfig() *tls.Config {
	a := s.cfg.ACME
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(acmeCacheDir(s.cfg.StateDir)),
		HostPolicy: autocert.HostWhitelist(a.Domains...),
		Email:      a.Email,
		Client:     &acme.Client{DirectoryURL: a.DirectoryURL, HTTPClient: a.HTTPClient},
	}
	if m.Client.DirectoryURL == "" {
		m.Client.DirectoryURL = autocert.DefaultACMEDirectory
	}
	tc := m.TLSConfig()
	tc.MinVersion = tls.VersionTLS13 // SEC-TLS-01; acme-tls/1 works over 1.3
	return tc
}
