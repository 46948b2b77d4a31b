package httpapi

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/wire"
)

// Defaults, listed once.
const (
	// DefaultAddr is the listen address: all interfaces, because the
	// directory's liveness probe and remote callers must reach the bridge.
	DefaultAddr = ":8443"

	// DefaultMaxBody caps a POST /v1/task body (wire.MaxCallBytes, 4 MiB).
	DefaultMaxBody = wire.MaxCallBytes

	// Server timeouts. WriteTimeout must outlast the longest task
	// (timeout_ms ≤ 300 s) plus encoding, or long tasks would be cut.
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 310 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	// DefaultShutdownTimeout bounds graceful shutdown; in-flight tasks past
	// it are cut (their callers see a reset and retry elsewhere).
	DefaultShutdownTimeout = 10 * time.Second

	// Per-IP and per-Origin limits on POST /v1/task (requests per minute and
	// burst). The IP limit is sized for a busy proxy; the Origin limit is
	// lower because it caps what a hostile web page can make visitors'
	// browsers send (iicp-core.md §3.1 confused-deputy note).
	DefaultIPRatePerMin     = 1200
	DefaultIPBurst          = 120
	DefaultOriginRatePerMin = 300
	DefaultOriginBurst      = 30
	// DefaultRateLimitKeys bounds the tracked IPs/origins per generation;
	// beyond it the oldest generation is dropped (its buckets reset to full).
	DefaultRateLimitKeys = 16384

	// SelfSignedValidity is the lifetime of a generated certificate; it is
	// regenerated when less than SelfSignedRenewBefore remains.
	SelfSignedValidity    = 365 * 24 * time.Hour
	SelfSignedRenewBefore = 7 * 24 * time.Hour
)

// Option configures a Server.
type Option func(*settings) error

type settings struct {
	addr                    string
	logger                  *slog.Logger
	registry                *prometheus.Registry
	maxBody                 int64
	readHeader              time.Duration
	read                    time.Duration
	write                   time.Duration
	idle                    time.Duration
	shutdown                time.Duration
	ipRate, ipBurst         int
	originRate, originBurst int
	rateKeys                int
	connsPerIP              int
	certFile                string
	serverTLS               *tls.Config // a prepared config (ACME); wins over files
	keyFile                 string
	selfSignedDir           string
	selfSignedSANs          []string
	plaintextDev            bool
	confidential            OpenConfidential
	now                     func() time.Time
}

// OpenConfidential opens an IICP-CX request body (cx Provider.Open
// adapted by the composition root): it returns the plain CALL JSON and the
// function that renders the RESPONSE body (sealing it when negotiated).
// A body without an envelope is returned unchanged.
type OpenConfidential func(body []byte) (call []byte, respond func(*wire.Response) ([]byte, error), err *wire.Error)

func defaultSettings() settings {
	return settings{
		addr:       DefaultAddr,
		logger:     slog.New(slog.DiscardHandler),
		maxBody:    DefaultMaxBody,
		readHeader: DefaultReadHeaderTimeout,
		read:       DefaultReadTimeout,
		write:      DefaultWriteTimeout,
		idle:       DefaultIdleTimeout,
		shutdown:   DefaultShutdownTimeout,
		ipRate:     DefaultIPRatePerMin, ipBurst: DefaultIPBurst,
		originRate: DefaultOriginRatePerMin, originBurst: DefaultOriginBurst,
		rateKeys: DefaultRateLimitKeys,
		now:      time.Now,
	}
}

// WithMaxConnsPerIP caps open connections per source (IPv4 address, IPv6
// /64) on the listener; 0 keeps httpx.DefaultConnsPerIP.
func WithMaxConnsPerIP(n int) Option {
	return func(s *settings) error {
		if n < 0 {
			return fmt.Errorf("max connections per IP must be >= 0, got %d", n)
		}
		s.connsPerIP = n
		return nil
	}
}

// WithAddr sets the listen address ("127.0.0.1:0" in tests).
func WithAddr(addr string) Option {
	return func(s *settings) error {
		if addr == "" {
			return errors.New("empty listen address")
		}
		s.addr = addr
		return nil
	}
}

// WithLogger sets the logger (the server adds "component"="httpapi").
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		if l == nil {
			return errors.New("nil logger")
		}
		s.logger = l
		return nil
	}
}

// WithRegistry serves reg on /metrics and registers the bridge's own
// meshnode_http_* series in it. Without it /metrics serves an empty registry.
func WithRegistry(reg *prometheus.Registry) Option {
	return func(s *settings) error { s.registry = reg; return nil }
}

// WithMaxBody caps the POST /v1/task body.
func WithMaxBody(n int64) Option {
	return func(s *settings) error {
		if n < 1024 {
			return fmt.Errorf("max body %d below 1024", n)
		}
		s.maxBody = n
		return nil
	}
}

// WithTimeouts overrides the http.Server timeouts (0 keeps a default).
func WithTimeouts(readHeader, read, write, idle time.Duration) Option {
	return func(s *settings) error {
		for _, d := range []time.Duration{readHeader, read, write, idle} {
			if d < 0 {
				return errors.New("negative timeout")
			}
		}
		s.readHeader = cmpOr(readHeader, s.readHeader)
		s.read = cmpOr(read, s.read)
		s.write = cmpOr(write, s.write)
		s.idle = cmpOr(idle, s.idle)
		return nil
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// WithShutdownTimeout bounds graceful shutdown.
func WithShutdownTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return errors.New("shutdown timeout must be positive")
		}
		s.shutdown = d
		return nil
	}
}

// WithRateLimits sets POST /v1/task limits per source IP and per Origin, in
// requests per minute with a burst. A rate of 0 disables that limit.
func WithRateLimits(ipPerMin, ipBurst, originPerMin, originBurst int) Option {
	return func(s *settings) error {
		if ipPerMin < 0 || originPerMin < 0 || ipBurst < 0 || originBurst < 0 {
			return errors.New("negative rate limit")
		}
		if (ipPerMin > 0 && ipBurst == 0) || (originPerMin > 0 && originBurst == 0) {
			return errors.New("rate limit needs a burst of at least 1")
		}
		s.ipRate, s.ipBurst, s.originRate, s.originBurst = ipPerMin, ipBurst, originPerMin, originBurst
		return nil
	}
}

// WithTLSFiles serves with the operator's certificate and key (PEM).
func WithTLSFiles(certFile, keyFile string) Option {
	return func(s *settings) error {
		if certFile == "" || keyFile == "" {
			return errors.New("TLS needs both a certificate and a key file")
		}
		s.certFile, s.keyFile = certFile, keyFile
		return nil
	}
}

// WithServerTLS serves with a prepared TLS configuration, such as one whose
// certificates come from an ACME CA (tlsutil.ServerConfig). Its minimum
// version is raised to TLS 1.3 (SEC-TLS-01).
func WithServerTLS(c *tls.Config) Option {
	return func(s *settings) error {
		if c == nil || (c.GetCertificate == nil && len(c.Certificates) == 0) {
			return errors.New("server TLS configuration has no certificate source")
		}
		s.serverTLS = c
		return nil
	}
}

// WithSelfSignedDir keeps a self-signed certificate in dir, generated on
// first run (key file mode 0600). hosts are extra DNS names or IPs for it.
func WithSelfSignedDir(dir string, hosts ...string) Option {
	return func(s *settings) error {
		if dir == "" {
			return errors.New("empty certificate directory")
		}
		s.selfSignedDir, s.selfSignedSANs = dir, hosts
		return nil
	}
}

// WithPlaintextDev serves plain HTTP. Listen refuses it unless the address
// is loopback: plaintext on a reachable interface would break SEC-TLS-01.
func WithPlaintextDev() Option {
	return func(s *settings) error { s.plaintextDev = true; return nil }
}

// WithConfidential installs the IICP-CX opener for JSON task bodies.
func WithConfidential(open OpenConfidential) Option {
	return func(s *settings) error {
		if open == nil {
			return errors.New("nil confidential opener")
		}
		s.confidential = open
		return nil
	}
}

// WithClock replaces time.Now for rate limiting (tests).
func WithClock(now func() time.Time) Option {
	return func(s *settings) error {
		if now == nil {
			return errors.New("nil clock")
		}
		s.now = now
		return nil
	}
}
