package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/acmetest"
)

var tlsListenLine = regexp.MustCompile(`listening on https://(127\.0\.0\.1:\d+)`)

// httpsAddr waits for a TLS directory's "listening on https://" line.
func httpsAddr(t *testing.T, p *proc) string {
	t.Helper()
	var a string
	eventually(t, 20*time.Second, p.name+" listening line", func() bool {
		if p.exited() {
			t.Fatalf("%s exited: %v", p.name, p.err)
		}
		if m := tlsListenLine.FindStringSubmatch(p.stdout()); m != nil {
			a = m[1]
			return true
		}
		return false
	})
	return a
}

// TestDirectoryACME: `meshnode directory --acme-domain NAME --acme-directory
// URL` gets its certificate from an ACME CA (an in-process RFC 8555 CA whose
// TLS-ALPN-01 validation dials the directory process) on the first
// handshake, and a client that trusts only that CA reaches it by NAME.
func TestDirectoryACME(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	const domain = "dir.acme.test"
	bin := buildBinary(t)
	ca, err := acmetest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ca.Close)
	// The directory process trusts the CA's own HTTPS endpoint the way an
	// operator would make it trust a private CA.
	caFile := filepath.Join(t.TempDir(), "acme-server.pem")
	if err := os.WriteFile(caFile, ca.ServerCertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", caFile)
	home := filepath.Join(t.TempDir(), "dir")
	writeTestConfig(t, home)
	dir := start(t, "directory", bin, "--home", home, "directory", "--listen", "127.0.0.1:0",
		"--acme-domain", domain, "--acme-directory", ca.DirectoryURL(), "--acme-email", "ops@example.org")
	addr := httpsAddr(t, dir)
	ca.Target(domain, addr)
	if !strings.Contains(dir.stdout(), "ACME certificate for "+domain) {
		t.Errorf("start-up block does not name the ACME certificate:\n%s", dir.stdout())
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CAPEM)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: domain, MinVersion: tls.VersionTLS13}}}
	resp, err := client.Get("https://" + addr + "/iicp/health")
	if err != nil {
		t.Fatalf("health over the ACME certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || ca.Issued() != 1 {
		t.Fatalf("health %d, %d certificates issued", resp.StatusCode, ca.Issued())
	}
	if code := dir.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("directory exit code %d", code)
	}
}

// TestDirectorySelfSignedHint: without a certificate or ACME the directory
// prints the exact fix for clients that must trust its self-signed
// certificate.
func TestDirectorySelfSignedHint(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	home := filepath.Join(t.TempDir(), "dir")
	writeTestConfig(t, home)
	dir := start(t, "directory", bin, "--home", home, "directory", "--listen", "127.0.0.1:0")
	httpsAddr(t, dir)
	out := dir.stdout()
	m := regexp.MustCompile(`self-signed certificate (\S+):`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, `directory.ca_file = "`+m[1]+`"`) || !strings.Contains(out, "SSL_CERT_FILE="+m[1]) {
		t.Fatalf("no exact trust fix in the start-up block:\n%s", out)
	}
	if _, err := os.Stat(m[1]); err != nil {
		t.Fatalf("the named certificate does not exist: %v", err)
	}
	if code := dir.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("directory exit code %d", code)
	}
}
