package openai

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
)

// Defaults, listed once.
const (
	// DefaultAddr is loopback: the API is for agents on this machine unless
	// the operator sets an API key and another address.
	DefaultAddr = "127.0.0.1:8091"
	// DefaultTaskTimeout is each request's constraints.timeout_ms: a long
	// generation on a home GPU; the IICP maximum is 300 s.
	DefaultTaskTimeout = 120 * time.Second
	// routeOverhead is added to the task budget for discovery and retries.
	routeOverhead = 10 * time.Second
	// Server timeouts. There is no write timeout: a streamed answer lasts
	// as long as the generation (the task budget bounds it).
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// DefaultShutdownTimeout bounds a graceful shutdown.
	DefaultShutdownTimeout = 10 * time.Second
	// minAPIKeyLen refuses keys short enough to guess.
	minAPIKeyLen = 16
)

// Option configures a Server.
type Option func(*settings) error

type settings struct {
	addr        string
	apiKey      string // LOG-FORBIDDEN
	taskTimeout time.Duration
	shutdown    time.Duration
	origin      string
	plaintext   bool
	logger      *slog.Logger
}

func defaults() settings {
	return settings{addr: DefaultAddr, taskTimeout: DefaultTaskTimeout, shutdown: DefaultShutdownTimeout,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// WithAddr sets the listen address (host:port; port 0 picks one).
func WithAddr(addr string) Option {
	return func(s *settings) error {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("openai: listen address %q is not host:port", addr)
		}
		s.addr = addr
		return nil
	}
}

// WithAPIKey requires Authorization: Bearer key on every request; it is
// what allows a non-loopback address. The key is never logged.
func WithAPIKey(key string) Option {
	return func(s *settings) error {
		if key != "" && (len(key) < minAPIKeyLen || strings.ContainsAny(key, " \t\r\n")) {
			return fmt.Errorf("openai: the API key must be at least %d characters without spaces", minAPIKeyLen)
		}
		s.apiKey = key
		return nil
	}
}

// WithTaskTimeout sets each request's task budget (1 s – 300 s).
func WithTaskTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d < time.Second || d > 300*time.Second {
			return fmt.Errorf("openai: task timeout %v outside 1s-300s", d)
		}
		s.taskTimeout = d
		return nil
	}
}

// WithShutdownTimeout bounds a graceful shutdown.
func WithShutdownTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return errors.New("openai: shutdown timeout must be positive")
		}
		s.shutdown = d
		return nil
	}
}

// WithOrigin names this node in each CALL's trace.origin_node.
func WithOrigin(nodeID string) Option {
	return func(s *settings) error { s.origin = nodeID; return nil }
}

// WithAllowPlaintext lets the router send prompts to nodes without an
// IICP-CX key (iicp-confidentiality.md §6 opt-in; off by default).
func WithAllowPlaintext(on bool) Option {
	return func(s *settings) error { s.plaintext = on; return nil }
}

// WithLogger logs requests (never prompts, answers or the key).
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		if l != nil {
			s.logger = l
		}
		return nil
	}
}

// isJSON reports whether a Content-Type is application/json.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// loopbackOrigin admits no Origin (not a browser, or same-origin GET) and
// pages served from this machine.
func loopbackOrigin(origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && httpx.IsLoopbackHost(u.Host)
}
