package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/acmetest"
	"github.com/meshnode/meshnode/internal/daemon/admin"
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

// freeLoopbackPort returns a loopback port that was free a moment ago (the
// node must know its ACME domain's port before it starts, as a public node
// knows its 443).
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_ = ln.Close()
	return port
}

// TestNodeACME (issue 17 item 3, public nodes): `meshnode up --acme-domain`
// gets the HTTP bridge's certificate from an ACME CA (TLS-ALPN-01 on the
// bridge's own listener) before it registers, registers
// https://<domain>:<port> as its endpoint, and the directory's liveness
// probe verifies that certificate against the CA (SEC-TLS-01): the node is
// listed, and a client that trusts the CA reaches /iicp/health by name.
func TestNodeACME(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	const domain = "node.example.net" // a routable name (.test is refused as an endpoint); never resolved: --resolve pins it
	bin := buildBinary(t)
	ca, err := acmetest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ca.Close)
	// Both processes trust the CA's own HTTPS endpoint (the node talks to it)
	// and its issuing root (the directory verifies the node's certificate).
	trust := filepath.Join(t.TempDir(), "trust.pem")
	if err := os.WriteFile(trust, append(ca.ServerCertPEM(), ca.CAPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", trust)

	port := freeLoopbackPort(t)
	bridge := net.JoinHostPort("127.0.0.1", port)
	ca.Target(domain, bridge)
	dirHome := filepath.Join(t.TempDir(), "dir")
	writeTestConfig(t, dirHome)
	// A public directory (TLS, SSRF guard on); the operator pins the node's
	// name to loopback the way curl --resolve does.
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--listen", "127.0.0.1:0",
		"--resolve", domain+":"+port+":127.0.0.1")
	dirURL := "https://" + httpsAddr(t, dir)
	m := regexp.MustCompile(`self-signed certificate (\S+):`).FindStringSubmatch(dir.stdout())
	if m == nil {
		t.Fatalf("directory names no certificate:\n%s", dir.stdout())
	}
	home := homeWith(t, fmt.Sprintf("[directory]\nurls = [%q]\nca_file = %q\n", dirURL, m[1]))
	n := start(t, "node", bin, "--home", home, "up", "--http", bridge,
		"--acme-domain", domain, "--acme-directory", ca.DirectoryURL(), "--acme-email", "ops@example.org")
	runtimeOf(t, n, home)
	var st *admin.Status
	eventually(t, 30*time.Second, "node registered with its ACME endpoint", func() bool {
		st = status(t, bin, home)
		return len(st.Directories) == 1 && st.Directories[0].State == dirclient.StateRegistered
	})
	if want := "https://" + domain + ":" + port; st.Endpoint != want {
		t.Errorf("registered endpoint %q, want %q", st.Endpoint, want)
	}
	if ca.Issued() != 1 {
		t.Errorf("%d certificates issued, want 1", ca.Issued())
	}
	if !strings.Contains(n.stdout(), "ACME certificate for "+domain) {
		t.Errorf("start-up block does not name the ACME certificate:\n%s", n.stdout())
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CAPEM)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: domain, MinVersion: tls.VersionTLS13}}}
	resp, err := client.Get("https://" + bridge + "/iicp/health")
	if err != nil {
		t.Fatalf("health over the ACME certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health %d", resp.StatusCode)
	}
	if code := n.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("node exit code %d", code)
	}
	if code := dir.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("directory exit code %d", code)
	}
}
