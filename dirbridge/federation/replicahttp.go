package federation

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// Discover limits on the replica's built-in read API.
const (
	defaultDiscoverLimit = 10
	maxDiscoverLimit     = 100
	maxSignedBody        = 8 << 20 // a discovery body larger than this is refused, not signed
)

// signedPaths are the discovery reads a replica signs (S.13 §6.5).
var signedPaths = map[string]bool{"/v1/discover": true, "/v1/bootstrap": true, "/api/v1/discover": true, "/api/v1/bootstrap": true}

func isSignedPath(p string) bool {
	return signedPaths[p] || strings.HasPrefix(p, "/v1/node/") || strings.HasPrefix(p, "/api/v1/node/")
}

// Handler is the replica's HTTP surface. It wraps next (the directory's
// handler when the directory store is the Sink; nil selects the built-in
// read API over the replicated state):
//
//   - unsafe methods are 307-redirected to the seed, path and query kept,
//     or refused with 503 IICP-E047 when the seed URL is unusable (DIR-FED-18);
//   - discovery reads answer 503 + Retry-After while the replica is more
//     than MaxLag behind or has no verified state (DIR-FED-08), and are
//     otherwise signed with the replica key (DIR-FED-20);
//   - /.well-known/did.json publishes the replica's own key.
func (r *Replica) Handler(next http.Handler) http.Handler {
	if next == nil {
		next = r.readAPI()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/did.json", methodOnly(http.MethodGet, r.handleDID))
	mux.Handle("/", next)
	return httpx.Recoverer(r.log, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			r.writeGate(w, req)
			return
		}
		if isSignedPath(req.URL.Path) {
			r.serveSigned(w, req, mux)
			return
		}
		mux.ServeHTTP(w, req)
	}))
}

// writeGate implements §6.2a: writes belong to the seed.
func (r *Replica) writeGate(w http.ResponseWriter, req *http.Request) {
	if r.seedErr != nil {
		httpx.WriteError(w, unavailable(wire.CodeE047, "replica_mode_misconfigured: no usable https seed URL to send writes to"))
		return
	}
	loc := strings.TrimSuffix(r.cfg.SeedURL, "/") + req.URL.EscapedPath()
	if req.URL.RawQuery != "" {
		loc += "?" + req.URL.RawQuery
	}
	h := w.Header()
	h.Set("Location", loc)
	h.Set("X-IICP-Replica-Redirect", "true")
	h.Set("X-IICP-Redirect-Reason", "replica_mode")
	h.Set("Retry-After", "0")
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// serveSigned gates on lag, runs the read into a buffer and signs what it
// will send.
func (r *Replica) serveSigned(w http.ResponseWriter, req *http.Request, next http.Handler) {
	if lag := r.Lag(); lag > r.cfg.MaxLag {
		w.Header().Set("Retry-After", strconv.Itoa(int(r.cfg.PollInterval.Seconds())+1))
		httpx.WriteError(w, unavailable(wire.CodeUnavailable, "replica is behind the seed; retry later or ask the seed"))
		return
	}
	if len(r.cfg.Key) != ed25519.PrivateKeySize || r.cfg.DID == "" {
		httpx.WriteError(w, unavailable(wire.CodeE048, "replica_signing_misconfigured"))
		return
	}
	// The seq is read before the body is produced: the state served is at
	// least this fresh, and a client comparing seqs never sees one newer
	// than the data.
	seq := r.appliedSeq.Load()
	rec := &bufferWriter{header: http.Header{}, status: http.StatusOK}
	next.ServeHTTP(rec, req)
	if rec.overflow {
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "response too large to sign"))
		return
	}
	h := w.Header()
	for k, v := range rec.header {
		h[k] = v
	}
	body := rec.buf.Bytes()
	h.Set(HeaderReplicaDID, r.cfg.DID)
	h.Set(HeaderSnapshotSeq, strconv.FormatInt(seq, 10))
	h.Set(HeaderReplicaSig, SignResponse(r.cfg.Key, req.Method, req.URL.Path, req.URL.RawQuery, seq, body))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.status)
	if req.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// bufferWriter captures a response so it can be signed before sending.
type bufferWriter struct {
	header      http.Header
	status      int
	wroteHeader bool
	buf         bytes.Buffer
	overflow    bool
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) WriteHeader(code int) {
	if !b.wroteHeader {
		b.status, b.wroteHeader = code, true
	}
}

func (b *bufferWriter) Write(p []byte) (int, error) {
	b.wroteHeader = true
	if b.buf.Len()+len(p) > maxSignedBody {
		b.overflow = true
		return len(p), nil
	}
	return b.buf.Write(p)
}

// handleDID publishes the replica's DID document; the seed resolves it at
// registration (DIR-FED-11) and clients verify responses with its key.
func (r *Replica) handleDID(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, NewDIDDocument(r.cfg.DID, r.cfg.Key.Public().(ed25519.PublicKey)))
}

// readAPI is the built-in discovery surface over the replicated state.
func (r *Replica) readAPI() http.Handler {
	mux := http.NewServeMux()
	for _, prefix := range []string{"", "/api"} {
		mux.HandleFunc(prefix+"/v1/discover", methodOnly(http.MethodGet, r.handleDiscover))
		mux.HandleFunc(prefix+"/v1/bootstrap", methodOnly(http.MethodGet, r.handleBootstrap))
		mux.HandleFunc(prefix+"/v1/node/{id}", methodOnly(http.MethodGet, r.handleNode))
	}
	mux.HandleFunc("/iicp/health", methodOnly(http.MethodGet, r.handleHealth))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "no such route"))
	})
	return mux
}

// live reports whether the replica may serve v at now (LivenessNow).
func (r *Replica) live(now time.Time) func(*nodeView) bool {
	return func(v *nodeView) bool { return now.Sub(v.lastSeen) <= r.cfg.LivenessWindow }
}

func (r *Replica) handleDiscover(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	q := req.URL.Query()
	intent := q.Get("intent")
	if intent == "" {
		httpx.WriteError(w, wire.NewError(wire.CodeValidationError, "intent is required").WithField("intent"))
		return
	}
	limit, werr := parseLimit(q.Get("limit"), defaultDiscoverLimit)
	if werr != nil {
		httpx.WriteError(w, werr)
		return
	}
	nodes := r.idx.query(discoverQuery{intent: intent, region: q.Get("region"), model: q.Get("model"), limit: limit}, r.live(r.LivenessNow()))
	httpx.WriteJSON(w, http.StatusOK, wire.NodeList{Nodes: nodes, Count: len(nodes), QueryMs: time.Since(start).Milliseconds()})
}

func (r *Replica) handleBootstrap(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	limit, werr := parseLimit(req.URL.Query().Get("limit"), 20)
	if werr != nil {
		httpx.WriteError(w, werr)
		return
	}
	nodes := r.idx.query(discoverQuery{region: req.URL.Query().Get("region"), limit: limit}, r.live(r.LivenessNow()))
	httpx.WriteJSON(w, http.StatusOK, wire.NodeList{Nodes: nodes, Count: len(nodes), QueryMs: time.Since(start).Milliseconds()})
}

func (r *Replica) handleNode(w http.ResponseWriter, req *http.Request) {
	n, ok := r.idx.node(req.PathValue("id"))
	if !ok {
		httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "no such node"))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, n)
}

// handleHealth answers the seed's §7.1 reachability probe.
func (r *Replica) handleHealth(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "role": "replica",
		"applied_seq": r.appliedSeq.Load(), "nodes": r.idx.count()})
}

func parseLimit(v string, def int) (int, *wire.Error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, wire.NewError(wire.CodeValidationError, "limit must be a positive integer").WithField("limit")
	}
	return min(n, maxDiscoverLimit), nil
}
