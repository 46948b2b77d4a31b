package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/acmetest"
)

const acmeDomain = "dir.acme.test"

// startACMEDirectory runs a directory whose certificate comes from ca.
func startACMEDirectory(t *testing.T, ca *acmetest.Server, stateDir string) (addr string, stop func()) {
	t.Helper()
	s, err := New(Config{Listen: "127.0.0.1:0", StateDir: stateDir, BcryptCost: 4, Version: "test",
		ACME: ACMEConfig{Domains: []string{acmeDomain}, DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.Client()}},
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ca.Target(acmeDomain, s.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	return s.Addr().String(), func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

// healthOver GETs /iicp/health at addr presenting serverName, trusting only
// the ACME CA's roots.
func healthOver(t *testing.T, ca *acmetest.Server, addr, serverName string) (int, error) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CAPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS13},
		DisableKeepAlives: true}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	resp, err := c.Get("https://" + addr + "/iicp/health")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestACMECertificate: with ACME domains the directory gets its certificate
// from the CA on the first handshake (TLS-ALPN-01 validated by the CA
// dialling the directory's own listener), serves it to clients that trust
// only that CA, keeps it in <state>/acme (0700, files 0600) so a restart
// does not order again, and never orders one for a name outside its list.
func TestACMECertificate(t *testing.T) {
	ca, err := acmetest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ca.Close)
	state := t.TempDir()
	addr, stop := startACMEDirectory(t, ca, state)
	if code, err := healthOver(t, ca, addr, acmeDomain); err != nil || code != http.StatusOK {
		t.Fatalf("first handshake: %d %v", code, err)
	}
	if n := ca.Issued(); n != 1 {
		t.Fatalf("%d certificates issued, want 1", n)
	}
	if _, err := healthOver(t, ca, addr, "other.acme.test"); err == nil {
		t.Fatal("a name outside the ACME domains got a certificate")
	}
	stop()

	fi, err := os.Stat(acmeCacheDir(state))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir: %v %v", fi, err)
	}
	entries, _ := os.ReadDir(acmeCacheDir(state))
	var names []string
	for _, e := range entries {
		info, _ := e.Info()
		names = append(names, e.Name())
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	if !strings.Contains(strings.Join(names, " "), acmeDomain) {
		t.Fatalf("no cached certificate for %s in %v", acmeDomain, names)
	}

	addr, stop = startACMEDirectory(t, ca, state) // restart on the same state
	defer stop()
	if code, err := healthOver(t, ca, addr, acmeDomain); err != nil || code != http.StatusOK {
		t.Fatalf("after restart: %d %v", code, err)
	}
	if n := ca.Issued(); n != 1 {
		t.Fatalf("restart ordered again: %d certificates issued", n)
	}
}

// TestACMEConfigRefused: ACME settings that cannot work fail at start with
// one line naming the fix.
func TestACMEConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"dev mode", Config{StateDir: "x", Dev: true, ACME: ACMEConfig{Domains: []string{acmeDomain}}}, "drop --dev"},
		{"with a certificate file", Config{StateDir: "x", TLSCertFile: "c", TLSKeyFile: "k", ACME: ACMEConfig{Domains: []string{acmeDomain}}}, "not both"},
		{"not a DNS name", Config{StateDir: "x", ACME: ACMEConfig{Domains: []string{"localhost"}}}, "not a DNS name"},
		{"an address", Config{StateDir: "x", ACME: ACMEConfig{Domains: []string{"10.0.0.1:443"}}}, "not a DNS name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			c.applyDefaults()
			if err := c.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate: %v, want %q", err, tc.want)
			}
		})
	}
}
