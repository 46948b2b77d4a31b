package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
)

// maxHealthBody caps how much of a node's /iicp/health answer we read.
const maxHealthBody = 64 << 10

// errProbeFailed means the endpoint did not answer its health check; the
// wrapped reason is safe to show the registering node.
var errProbeFailed = errors.New("liveness probe failed")

// prober performs the registration liveness check GET {endpoint}/iicp/health
// (iicp-dir.md §3.1, DIR-REG-04) over verified TLS 1.3, refusing to dial
// non-routable addresses unless in dev mode.
type prober struct {
	client  *http.Client
	dialer  *net.Dialer
	resolve map[string]string
	dev     bool
	timeout time.Duration
}

func newProber(cfg *Config) (*prober, error) {
	roots, err := x509.SystemCertPool() // honours SSL_CERT_FILE / SSL_CERT_DIR
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	for _, p := range cfg.ExtraRootsPEM {
		roots.AppendCertsFromPEM(p)
	}
	resolve, err := parseResolve(cfg.Resolve)
	if err != nil {
		return nil, err
	}
	p := &prober{resolve: resolve, dev: cfg.Dev, timeout: cfg.ProbeTimeout}
	p.dialer = &net.Dialer{Timeout: cfg.ProbeTimeout}
	if !cfg.Dev {
		p.dialer = httpx.GuardedDialer(cfg.ProbeTimeout)
	}
	tr := &http.Transport{
		Proxy:                 nil, // never route probes through an environment proxy
		DialContext:           p.dial,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13},
		TLSHandshakeTimeout:   cfg.ProbeTimeout,
		ResponseHeaderTimeout: cfg.ProbeTimeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
		DisableKeepAlives:     true, // one probe per registration; keep no sockets to nodes
	}
	p.client = &http.Client{
		Transport:     tr,
		Timeout:       cfg.ProbeTimeout,
		CheckRedirect: httpx.NoRedirects, // a redirect is not a healthy answer
	}
	return p, nil
}

// dial applies Resolve overrides (operator-trusted, so not re-checked) and
// otherwise dials through the SSRF-checking dialer.
func (p *prober) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if target, ok := p.resolve[strings.ToLower(addr)]; ok {
		d := net.Dialer{Timeout: p.timeout}
		return d.DialContext(ctx, network, target)
	}
	return p.dialer.DialContext(ctx, network, addr)
}

// closeIdle releases pooled connections (shutdown).
func (p *prober) closeIdle() { p.client.CloseIdleConnections() }

// health probes endpoint. It returns nil on a 2xx answer, an httpx.ErrNonRoutable
// error when the resolved address is refused, and errProbeFailed otherwise.
func (p *prober) health(ctx context.Context, endpoint string) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	u := strings.TrimRight(endpoint, "/") + "/iicp/health"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: bad endpoint URL", errProbeFailed)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "meshnode-directory/liveness")
	resp, err := p.client.Do(req)
	if err != nil {
		if errors.Is(err, httpx.ErrNonRoutable) {
			return fmt.Errorf("%w: endpoint resolves to a non-routable address", httpx.ErrNonRoutable)
		}
		return fmt.Errorf("%w: %s", errProbeFailed, probeReason(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHealthBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: health check answered HTTP %d", errProbeFailed, resp.StatusCode)
	}
	return nil
}

// reachable is the TCP-connect check of GET /v1/probe (iicp-dir.md §3.9c
// mechanics): SSRF-guarded, bounded by the probe timeout.
func (p *prober) reachable(ctx context.Context, hostport string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	c, err := p.dial(ctx, "tcp", hostport)
	if err != nil {
		return 0, err
	}
	c.Close()
	return time.Since(start), nil
}

// probeReason classifies a client error without echoing addresses or
// internal detail.
func probeReason(err error) string {
	var certErr *tls.CertificateVerificationError
	var netErr net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &certErr):
		return "TLS certificate not trusted"
	case errors.As(err, &dnsErr):
		return "endpoint host does not resolve"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "health check timed out"
	case strings.Contains(err.Error(), "tls:"):
		return "TLS handshake failed"
	default:
		return "endpoint unreachable"
	}
}
