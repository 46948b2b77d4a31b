package federation

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// maxSignedBody: a discovery body larger than this is refused, not signed.
const maxSignedBody = 8 << 20

// signedPaths are the discovery reads a replica signs (S.13 §6.5).
var signedPaths = map[string]bool{"/v1/discover": true, "/v1/bootstrap": true, "/api/v1/discover": true, "/api/v1/bootstrap": true}

func isSignedPath(p string) bool {
	return signedPaths[p] || strings.HasPrefix(p, "/v1/node/") || strings.HasPrefix(p, "/api/v1/node/")
}

// Handler is the replica's HTTP surface around next, the directory's
// routes over the store the replica feeds (ReplicaDirectory mounts it so;
// the replica has no read API of its own, and a nil next answers every
// read not_found):
//
//   - unsafe methods are 307-redirected to the seed, path and query kept,
//     or refused with 503 IICP-E047 when the seed URL is unusable (DIR-FED-18);
//   - discovery reads answer 503 + Retry-After while the replica is more
//     than MaxLag behind or has no verified state (DIR-FED-08), and are
//     otherwise signed with the replica key (DIR-FED-20);
//   - /.well-known/did.json publishes the replica's own key.
func (r *Replica) Handler(next http.Handler) http.Handler {
	if next == nil {
		next = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "no such route"))
		})
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
