package mcp

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/route"
)

// Path is where the MCP endpoint is served.
const Path = "/mcp"

// Defaults, listed once.
const (
	// DefaultTimeout is a tool call's task budget (constraints.timeout_ms).
	DefaultTimeout = 60 * time.Second
	// callOverhead is added to the task budget for discovery and retries.
	callOverhead = 10 * time.Second
	// maxBody bounds one JSON-RPC request (tool arguments carry prompts).
	maxBody = 4 << 20
)

// Config is what a Server needs. Router and Intents are required.
type Config struct {
	// Router runs every tool call (mesh peers, directories, local fallback).
	Router *route.Router
	// Intents lists the intents the mesh is known to serve; each becomes a
	// tool. Called on tools/list and tools/call (cache inside; see Catalog).
	Intents func(ctx context.Context) []string
	// APIKey, when set, is required as "Authorization: Bearer <key>" on
	// every request; without one the server only answers loopback peers
	// addressed by a loopback host name (LOG-FORBIDDEN).
	APIKey string
	// OriginNode is this node's node_id, put in each CALL's trace.
	OriginNode string
	// Timeout is each task's budget; 0 uses DefaultTimeout.
	Timeout time.Duration
	// AllowPlaintext lets the router send payloads to nodes without an
	// IICP-CX key (debugging only, iicp-confidentiality.md §6).
	AllowPlaintext bool
	// Version is reported as serverInfo.version.
	Version string
	// Logger gets one debug line per tool call (tool, path, node, IICP
	// code; never arguments or results). nil discards.
	Logger *slog.Logger
}

// Server is the MCP endpoint: a stateless Streamable HTTP server (one
// JSON-RPC request per POST, answered with one application/json body; no
// session, no server-sent events). Build with New, bind with Listen, run
// with Serve; or mount Handler on a listener of your own.
type Server struct {
	cfg Config
	log *slog.Logger
	ln  net.Listener
	srv *http.Server
}

// New checks cfg and builds a Server. It binds nothing.
func New(cfg Config) (*Server, error) {
	if cfg.Router == nil || cfg.Intents == nil {
		return nil, errors.New("mcp: Config needs a Router and an Intents source")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{cfg: cfg, log: log}, nil
}

// Listen binds addr. A non-loopback address needs an API key: the endpoint
// spends this node's credentials on whoever calls it.
func (s *Server) Listen(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("mcp: listen address %q: %w", addr, err)
	}
	if !httpx.IsLoopbackHost(host) && s.cfg.APIKey == "" {
		return fmt.Errorf("mcp: %q is not a loopback address: set mcp.api_key_file to serve MCP on it", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return nil
}

// URL is the endpoint's URL once bound ("" before Listen).
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String() + Path
}

// Serve serves until ctx ends, then lets running tool calls finish for a
// bounded time.
func (s *Server) Serve(ctx context.Context) error {
	if s.srv == nil {
		return errors.New("mcp: Serve before Listen")
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("mcp: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("mcp: %w", err)
	}
	return nil
}

// Handler serves the endpoint at Path behind the guard.
func (s *Server) Handler() http.Handler {
	// httpx logs a panic without its value (it may hold task data).
	return httpx.RecovererAnswering(s.log, func(w http.ResponseWriter) {
		writeError(w, nil, newErr(http.StatusInternalServerError, CodeInternalError, "internal error"))
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := s.guard(w, r); e != nil {
			writeError(w, nil, e)
			return
		}
		s.serveRPC(w, r)
	}))
}

// guard admits a request: right path and method, then the trust rules
// (mcp.md "Trust"): with no API key, loopback peers addressing the server by
// a loopback host name only, and no foreign Origin (DNS rebinding); with a
// key, the key.
func (s *Server) guard(w http.ResponseWriter, r *http.Request) *rpcError {
	if r.URL.Path != Path {
		return newErr(http.StatusNotFound, CodeInvalidRequest, "no such endpoint: MCP is served at "+Path)
	}
	if s.cfg.APIKey == "" {
		peerHost, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(peerHost); ip == nil || !ip.IsLoopback() {
			return newErr(http.StatusForbidden, CodeUnauthorized, "the MCP endpoint answers loopback clients only")
		}
		if !httpx.IsLoopbackHost(hostOnly(r.Host)) {
			return newErr(http.StatusForbidden, CodeUnauthorized, "the Host header must name a loopback address")
		}
		if o := r.Header.Get("Origin"); o != "" && !loopbackOrigin(o) {
			return newErr(http.StatusForbidden, CodeUnauthorized, "requests from a foreign Origin are refused")
		}
	} else {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.APIKey)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="meshnode-mcp"`)
			return newErr(http.StatusUnauthorized, CodeUnauthorized, "missing or invalid API key (Authorization: Bearer <key>)")
		}
	}
	if r.Method != http.MethodPost {
		// No server-sent event stream and no session to delete (stateless).
		w.Header().Set("Allow", http.MethodPost)
		return newErr(http.StatusMethodNotAllowed, CodeInvalidRequest, "only POST is served: this server is stateless and opens no event stream")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return newErr(http.StatusUnsupportedMediaType, CodeInvalidRequest, "Content-Type must be application/json")
	}
	return nil
}

// serveRPC reads, decodes and dispatches one JSON-RPC message.
func (s *Server) serveRPC(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, nil, newErr(http.StatusRequestEntityTooLarge, CodeInvalidRequest, "the request exceeds 4 MiB"))
			return
		}
		writeError(w, nil, newErr(http.StatusBadRequest, CodeParseError, "the body could not be read"))
		return
	}
	req, id, e := decodeRequest(body)
	if e != nil {
		writeError(w, id, e)
		return
	}
	if req.IsResponse {
		w.WriteHeader(http.StatusAccepted) // this server sends no requests: nothing to match
		return
	}
	rev, e := negotiate(r.Header, req)
	if e != nil {
		writeError(w, req.ID, e)
		return
	}
	if !req.IsCall() {
		// notifications/initialized, notifications/cancelled…: accepted,
		// nothing to do for a stateless server (MCP: 202, no body).
		w.WriteHeader(http.StatusAccepted)
		return
	}
	result, e := s.dispatch(r.Context(), rev, req)
	if e != nil {
		writeError(w, req.ID, e)
		return
	}
	writeResult(w, req.ID, result)
}

// dispatch runs one call.
func (s *Server) dispatch(ctx context.Context, rev revision, req *Request) (any, *rpcError) {
	switch req.Method {
	case "initialize":
		return s.initialize(rev), nil
	case "server/discover":
		return s.discover(), nil
	case "ping":
		return complete(rev, map[string]any{}), nil
	case "tools/list":
		return s.listTools(ctx, rev, req.Params)
	case "tools/call":
		return s.callTool(ctx, rev, req.Params)
	}
	return nil, newErr(http.StatusOK, CodeMethodNotFound, "method not found: this server offers tools only")
}

func (s *Server) serverInfo() map[string]string {
	return map[string]string{"name": "meshnode", "title": "meshnode: the IICP mesh as tools", "version": s.cfg.Version}
}

const instructions = "Each tool runs one IICP task on the best node of the mesh that serves its intent. " +
	"Tool arguments are the intent's IICP payload (for llm_chat: {\"messages\":[{\"role\":\"user\",\"content\":\"…\"}]})."

// initialize answers the legacy handshake (MCP 2025-11-25): the revision
// the client asked for when this server declares it, else the legacy
// revision it does declare (the client then decides; nothing is
// reinterpreted). No Mcp-Session-Id is issued: the server is stateless.
func (s *Server) initialize(rev revision) any {
	return map[string]any{
		"protocolVersion": rev.version,
		"capabilities":    map[string]any{"tools": map[string]any{"listChanged": false}},
		"serverInfo":      s.serverInfo(),
		"instructions":    instructions,
	}
}

// discover answers server/discover (MCP 2026-07-28): the revisions this
// server declares and its capabilities.
func (s *Server) discover() any {
	return map[string]any{
		"resultType":        "complete",
		"supportedVersions": Revisions(),
		"capabilities":      map[string]any{"tools": map[string]any{"listChanged": false}},
		"instructions":      instructions,
		"ttlMs":             0,
		"cacheScope":        "private",
		"_meta":             map[string]any{metaServerInfo: s.serverInfo()},
	}
}

// complete marks a modern-era result final (resultType "complete").
func complete(rev revision, m map[string]any) map[string]any {
	if rev.modern {
		m["resultType"] = "complete"
	}
	return m
}

// hostOnly strips the port from a Host header.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.Trim(h, "[]")
}

// loopbackOrigin reports whether an Origin header names a loopback host.
func loopbackOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && httpx.IsLoopbackHost(u.Hostname())
}
