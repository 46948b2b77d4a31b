package openai

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

// Router runs CALLs (route.Router).
type Router interface {
	Call(ctx context.Context, call *wire.Call, q route.Query) (*route.Result, error)
	CallStream(ctx context.Context, call *wire.Call, q route.Query, chunks route.Chunks) (*route.Result, error)
}

// Catalog lists the models the known nodes offer (route.Models over the
// node's finders).
type Catalog func(ctx context.Context) []route.Model

// Server is the OpenAI-compatible API: a handler plus a Serve(ctx) service.
type Server struct {
	set     settings
	router  Router
	models  Catalog
	log     *slog.Logger
	handler http.Handler

	mu sync.Mutex
	ln net.Listener
}

// New builds the API over router and models. A non-loopback address
// without an API key is refused here, before anything listens.
func New(router Router, models Catalog, opts ...Option) (*Server, error) {
	if router == nil || models == nil {
		return nil, errors.New("openai: nil router or catalog")
	}
	set := defaults()
	for _, o := range opts {
		if err := o(&set); err != nil {
			return nil, err
		}
	}
	if set.apiKey == "" && !httpx.IsLoopbackAddr(set.addr) {
		return nil, fmt.Errorf("openai: %s is not a loopback address: set an API key (openai.api_key_env) or listen on 127.0.0.1", set.addr)
	}
	s := &Server{set: set, router: router, models: models, log: set.logger}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.generate(kindChat))
	mux.HandleFunc("POST /v1/completions", s.generate(kindCompletion))
	mux.HandleFunc("POST /v1/embeddings", s.generate(kindEmbedding))
	mux.HandleFunc("GET /v1/models", s.listModels)
	mux.HandleFunc("GET /v1/models/{model...}", s.getModel)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, wire.NewErrorStatus(wire.CodeNotFound, http.StatusNotFound, "no such endpoint (see /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings)"))
	})
	s.handler = s.recoverer(s.guardBrowser(s.authorize(mux)))
	return s, nil
}

// guardBrowser keeps web pages away from a keyless API. Without a key the
// API trusts whoever reaches the loopback address, and a browser on this
// machine is such a someone: a page could POST a "simple" cross-origin
// request, or rebind its own DNS name to 127.0.0.1, and spend the mesh's
// compute. So, without a key: POSTs must be application/json (a browser
// must then preflight, which is never granted), a request from another
// web origin is refused, and the Host must name a loopback address.
func (s *Server) guardBrowser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !isJSON(r.Header.Get("Content-Type")) {
			writeError(w, wire.NewErrorStatus(wire.CodeUnsupportedMedia, http.StatusUnsupportedMediaType, "Content-Type must be application/json"))
			return
		}
		if s.set.apiKey == "" && (!loopbackOrigin(r.Header.Get("Origin")) || !httpx.IsLoopbackHost(r.Host)) {
			writeError(w, wire.NewErrorStatus(wire.CodeForbidden, http.StatusForbidden,
				"requests from web pages or other hosts need an API key (openai.api_key_env)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Handler is the complete HTTP handler (tests, embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// authorize checks the bearer key in constant time when one is set.
func (s *Server) authorize(next http.Handler) http.Handler {
	if s.set.apiKey == "" {
		return next
	}
	want := []byte("Bearer " + s.set.apiKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			writeError(w, wire.NewError(wire.CodeUnauthorized, "missing or wrong API key (Authorization: Bearer <key>)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a handler panic into a 500 in OpenAI's shape (httpx:
// logged without the panic value, which may hold request text).
func (s *Server) recoverer(next http.Handler) http.Handler {
	return httpx.RecovererAnswering(s.log, func(w http.ResponseWriter) {
		writeError(w, wire.NewError(wire.CodeInternal, "internal error"))
	}, next)
}

// Listen binds the address; Serve calls it when needed.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.set.addr)
	if err != nil {
		return fmt.Errorf("openai: listening on %s: %w", s.set.addr, err)
	}
	s.ln = ln
	return nil
}

// URL is the API's base URL, ending in /v1 ("" before Listen).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String() + "/v1"
}

// Serve serves until ctx ends, then shuts down within the shutdown
// timeout; open streams are cut at that bound.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("OpenAI-compatible API listening", "url", s.URL(), "key_required", s.set.apiKey != "")
	select {
	case err := <-errc:
		return fmt.Errorf("openai: serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.set.shutdown)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		_ = srv.Close()
		err = nil
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("openai: serving: %w", serr)
	}
	return err
}

// newTaskID returns a random UUID v4.
func newTaskID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return wire.UUIDv4(b)
}
