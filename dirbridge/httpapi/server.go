package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// TaskEngine is what the bridge needs from the task engine (node.Engine).
type TaskEngine interface {
	// Execute runs one CALL and always returns a RESPONSE.
	Execute(ctx context.Context, call *wire.Call, caller wire.Caller) *wire.Response
	// Health is the GET /iicp/health body.
	Health(ctx context.Context) wire.Health
}

// Server is the node's HTTP bridge: a handler plus a Serve(ctx) service.
type Server struct {
	eng      TaskEngine
	set      settings
	log      *slog.Logger
	met      *httpMetrics
	ipLim    *httpx.Limiter
	originLm *httpx.Limiter
	lnStats  httpx.ListenerStats
	handler  http.Handler
	tlsConf  *tls.Config // nil: plaintext dev mode

	mu sync.Mutex
	ln net.Listener
}

// New builds the bridge for eng. TLS material is loaded (or generated) here
// so a misconfiguration fails at startup, not on the first connection.
func New(eng TaskEngine, opts ...Option) (*Server, error) {
	if eng == nil {
		return nil, errors.New("httpapi: nil engine")
	}
	set := defaultSettings()
	for _, o := range opts {
		if err := o(&set); err != nil {
			return nil, fmt.Errorf("httpapi: option: %w", err)
		}
	}
	s := &Server{
		eng:      eng,
		set:      set,
		log:      set.logger.With("component", "httpapi"),
		ipLim:    newLimiter(set.ipRate, set.ipBurst, set.rateKeys),
		originLm: newLimiter(set.originRate, set.originBurst, set.rateKeys),
	}
	var reg prometheus.Registerer // stays a nil interface without a registry
	if set.registry != nil {
		reg = set.registry
	}
	met, err := newHTTPMetrics(reg, &s.lnStats)
	if err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	s.met = met
	if set.plaintextDev {
		if !httpx.IsLoopbackAddr(set.addr) {
			return nil, fmt.Errorf("httpapi: plaintext HTTP is only allowed on a loopback address, not %q (SEC-TLS-01); configure TLS or listen on 127.0.0.1", set.addr)
		}
		s.log.Warn("plaintext HTTP dev mode: no TLS on the node API", "addr", set.addr)
	} else if s.tlsConf, err = tlsConfig(&s.set); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	s.handler = s.chain(s.routes())
	return s, nil
}

// chain wraps h in the one middleware chain.
func (s *Server) chain(h http.Handler) http.Handler {
	return s.recoverer(requestIDs(s.accessLog(cors(tracing(h)))))
}

// Handler is the complete HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig is the server's TLS config (nil in plaintext dev mode); clients
// in tests use its certificate as their root.
func (s *Server) TLSConfig() *tls.Config { return s.tlsConf }

// Listen binds the listen address. Serve calls it when needed; call it
// first to learn the bound address (":0" in tests).
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.set.addr)
	if err != nil {
		return fmt.Errorf("httpapi: listening on %s: %w", s.set.addr, err)
	}
	if s.tlsConf == nil && !httpx.IsLoopbackAddr(ln.Addr().String()) {
		ln.Close()
		return fmt.Errorf("httpapi: plaintext listener bound non-loopback %s", ln.Addr())
	}
	s.ln = httpx.NewConnCap(ln, s.set.connsPerIP, &s.lnStats)
	return nil
}

// Close releases a listener Listen bound but Serve never took (a start-up
// that failed later); after Serve it does nothing harmful.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	err := s.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Addr is the bound address, nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// URL is the base URL of the bound listener ("" before Listen).
func (s *Server) URL() string {
	a := s.Addr()
	if a == nil {
		return ""
	}
	if s.tlsConf == nil {
		return "http://" + a.String()
	}
	return "https://" + a.String()
}

// Serve serves until ctx ends, then shuts down gracefully within the
// shutdown timeout. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.set.readHeader,
		ReadTimeout:       s.set.read,
		WriteTimeout:      s.set.write,
		IdleTimeout:       s.set.idle,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		ErrorLog:          httpx.ServerErrorLog(s.log, &s.lnStats),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.tlsConf != nil {
		srv.TLSConfig = s.tlsConf.Clone()
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("node API listening", "url", s.URL())
	select {
	case err := <-errc:
		return fmt.Errorf("httpapi: serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.set.shutdown)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("httpapi: serving: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("httpapi: shutdown: %w", err)
	}
	return nil
}
