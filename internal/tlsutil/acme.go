package tlsutil

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACME gets a server's certificate from an ACME CA (RFC 8555, e.g. Let's
// Encrypt) with golang.org/x/crypto/acme/autocert, answering TLS-ALPN-01
// challenges on the server's own TLS listener, so the CA must reach that
// listener on port 443 of each domain (a forwarded port works). The
// account key and certificates are cached in <StateDir>/acme (0700) and
// renewed before expiry. The node bridge and the directory both use it.
type ACME struct {
	// Domains are the DNS names to get certificates for; only these are
	// ever requested (autocert's host policy), whatever SNI a client sends.
	Domains []string
	// DirectoryURL is the CA's ACME directory; empty: Let's Encrypt.
	DirectoryURL string
	// Email is the account contact (optional).
	Email string
	// StateDir holds the acme/ cache directory.
	StateDir string
	// HTTPClient talks to the CA; nil: a default client.
	HTTPClient *http.Client
}

// ACMECacheDir is where certificates and the account key are kept.
func ACMECacheDir(stateDir string) string { return filepath.Join(stateDir, "acme") }

// Enabled reports whether any domain is configured.
func (a *ACME) Enabled() bool { return a != nil && len(a.Domains) > 0 }

// Validate checks the domains and the cache location; the error names the
// setting to fix.
func (a *ACME) Validate() error {
	if !a.Enabled() {
		return nil
	}
	if a.StateDir == "" {
		return errors.New("ACME needs a state directory for its certificate cache")
	}
	for _, d := range a.Domains {
		// autocert refuses names without a dot, and IPs cannot be validated.
		if !strings.Contains(strings.Trim(d, "."), ".") || strings.ContainsAny(d, ":/ ") {
			return fmt.Errorf("ACME domain %q is not a DNS name like node.example.org", d)
		}
	}
	return nil
}

// Manager is the autocert manager for a.
func (a *ACME) Manager() *autocert.Manager {
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(ACMECacheDir(a.StateDir)),
		HostPolicy: autocert.HostWhitelist(a.Domains...),
		Email:      a.Email,
		Client:     &acme.Client{DirectoryURL: a.DirectoryURL, HTTPClient: a.HTTPClient},
	}
	if m.Client.DirectoryURL == "" {
		m.Client.DirectoryURL = autocert.DefaultACMEDirectory
	}
	return m
}

// ServerConfig is a TLS 1.3 listener configuration serving m's
// certificates (h2, http/1.1 and the acme-tls/1 challenge protocol).
func ServerConfig(m *autocert.Manager) *tls.Config {
	tc := m.TLSConfig()
	tc.MinVersion = tls.VersionTLS13 // SEC-TLS-01; acme-tls/1 works over 1.3
	return tc
}

// Obtain gets (or loads from the cache) the certificate of domain, the way
// the first client's handshake would; call it once the listener accepts
// so the CA's TLS-ALPN-01 validation can reach it. It returns the
// certificate's expiry, or ctx's error when ctx ends first (autocert bounds
// the request itself at five minutes; the attempt then finishes alone).
func Obtain(ctx context.Context, m *autocert.Manager, domain string) (time.Time, error) {
	hello := &tls.ClientHelloInfo{
		ServerName:        domain,
		SupportedProtos:   []string{"h2", "http/1.1"},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedVersions: []uint16{tls.VersionTLS13},
		CipherSuites:      []uint16{tls.TLS_AES_128_GCM_SHA256},
	}
	type result struct {
		c   *tls.Certificate
		err error
	}
	done := make(chan result, 1) // buffered: a late answer never blocks
	go func() {
		c, err := m.GetCertificate(hello)
		done <- result{c, err}
	}()
	select {
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case r := <-done:
		if r.err != nil {
			return time.Time{}, r.err
		}
		if r.c.Leaf == nil {
			return time.Time{}, errors.New("ACME certificate has no parsed leaf")
		}
		return r.c.Leaf.NotAfter, nil
	}
}
