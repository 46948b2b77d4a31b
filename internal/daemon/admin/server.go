package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// Server limits. The write timeout must outlast the longest task
// (timeout_ms ≤ 300 s, schemas/task.json) plus discovery and retries.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 330 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// maxCallBody bounds POST /admin/v1/call (IICP task invocations are
	// capped at 1 MiB, iicp-framing.md §2; JSON escaping adds headroom).
	maxCallBody = 2 << 20
	// shutdownGrace bounds draining in-flight admin requests.
	shutdownGrace = 5 * time.Second
)

// Backend is what the node provides to the admin API (implemented by the
// composition root).
type Backend interface {
	Status(ctx context.Context) Status
	Peers(ctx context.Context) []Peer
	// NodeToken is the token the node currently accepts in auth.node_token.
	NodeToken() string
	// Call runs a task; a nil result comes with a non-nil *wire.Error.
	Call(ctx context.Context, req CallRequest) (*CallResult, *wire.Error)
	// Reregister asks every directory session to register again now (a
	// new operator delegation in the home); it returns how many.
	Reregister() int
}

// Server is the admin HTTP server.
type Server struct {
	addr    string
	token   string
	backend Backend
	log     *slog.Logger
	mu      sync.Mutex   // guards ln
	ln      net.Listener // bound by Listen
	srv     *http.Server
}

// New validates the admin endpoint (a loopback address, a token of at
// least 32 bytes) and builds its routes; it binds nothing. token is the
// bearer every request must present (LOG-FORBIDDEN).
func New(addr, token string, b Backend, log *slog.Logger) (*Server, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("admin: listen address %q: %w", addr, err)
	}
	if !httpx.IsLoopbackAddr(addr) {
		return nil, fmt.Errorf("admin: refusing non-loopback listen address %q", addr)
	}
	if len(token) < 32 {
		return nil, errors.New("admin: token too short")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{addr: addr, token: token, backend: b, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/status", s.status)
	mux.HandleFunc("GET /admin/v1/peers", s.peers)
	mux.HandleFunc("GET /admin/v1/token", s.nodeToken)
	mux.HandleFunc("POST /admin/v1/call", s.call)
	mux.HandleFunc("POST /admin/v1/reregister", s.reregister)
	s.srv = &http.Server{
		Handler:           s.guard(mux),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Listen is New followed by the bind: what the composition root calls in
// its bind phase.
func Listen(addr, token string, b Backend, log *slog.Logger) (*Server, error) {
	s, err := New(addr, token, b, log)
	if err != nil {
		return nil, err
	}
	if err := s.Listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// Listen binds the endpoint; Serve calls it when needed. A second Listen
// does nothing.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.ln = ln
	return nil
}

func (s *Server) listener() net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln
}

// Close releases the listener of a server whose Serve never ran (a
// start-up that failed after Listen).
func (s *Server) Close() error {
	ln := s.listener()
	if ln == nil {
		return nil
	}
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// URL is the bound base URL ("" before Listen).
func (s *Server) URL() string {
	ln := s.listener()
	if ln == nil {
		return ""
	}
	return "http://" + ln.Addr().String()
}

// Serve binds (Listen) when needed, serves until ctx ends, then drains for
// a bounded time; its goroutine has ended when it returns.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	ln := s.listener()
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// guard is the one middleware chain: panic recovery (httpx.Recoverer: the
// stack is logged, never the panic value, as the call route carries task
// payloads, SEC-LOG-01), loopback peers only, bearer authentication.
func (s *Server) guard(next http.Handler) http.Handler {
	return httpx.Recoverer(s.log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			httpx.WriteError(w, wire.NewError(wire.CodeForbidden, "admin endpoint is loopback-only"))
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 {
			httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "missing or invalid admin token"))
			return
		}
		next.ServeHTTP(w, r)
	}))
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, s.backend.Status(r.Context()))
}

func (s *Server) peers(w http.ResponseWriter, r *http.Request) {
	p := s.backend.Peers(r.Context())
	if p == nil {
		p = []Peer{}
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

func (s *Server) nodeToken(w http.ResponseWriter, _ *http.Request) {
	tok := s.backend.NodeToken()
	if tok == "" {
		httpx.WriteError(w, wire.NewError(wire.CodeUnavailable, "the node holds no token yet (not registered)"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"token": tok})
}

func (s *Server) reregister(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]int{"directories": s.backend.Reregister()})
}

func (s *Server) call(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCallBody+1))
	if err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodeValidationError, "reading request body failed"))
		return
	}
	if len(body) > maxCallBody {
		httpx.WriteError(w, wire.NewError(wire.CodePayloadTooLarge, "call request too large"))
		return
	}
	var req CallRequest
	if err := json.Unmarshal(body, &req); err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodeValidationError, "request body is not a CallRequest JSON object"))
		return
	}
	if sb, ok := s.backend.(StreamBackend); ok && req.Stream {
		s.callStream(w, r, sb, req)
		return
	}
	res, werr := s.backend.Call(r.Context(), req)
	if werr != nil {
		httpx.WriteError(w, werr)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}
