package directory

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// handleProbe is GET /v1/probe?host=&port=: an SSRF-guarded TCP reachability
// check (iicp-dir.md §3.3e, DIR-PROBE-01/02). The guard applies in every
// mode because this route dials on behalf of anonymous callers.
func (s *Server) handleProbe(w http.ResponseWriter, r *http.Request) {
	if ok, wait := s.probeLimit.Allow(s.limitKey(r), s.now()); !ok {
		s.metrics.rateLimited.WithLabelValues("probe").Inc()
		httpx.RateLimited(w, "too many probe requests", wait)
		return
	}
	host := strings.TrimSuffix(strings.TrimPrefix(r.URL.Query().Get("host"), "["), "]")
	port := r.URL.Query().Get("port")
	if port == "" {
		port = nativeHTTPPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		httpx.WriteError(w, verr("port", "port must be in 1..65535"))
		return
	}
	if host == "" || len(host) > 253 {
		httpx.WriteError(w, verr("host", "host is required"))
		return
	}
	if err := httpx.CheckHost(host); err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodePrivateAddress, err.Error()).WithField("host"))
		return
	}
	hp := net.JoinHostPort(host, port)
	var lat time.Duration
	var err error
	if _, overridden := s.prober.resolve[strings.ToLower(hp)]; overridden || !s.cfg.Dev {
		lat, err = s.prober.reachable(r.Context(), hp)
	} else {
		lat, err = s.guardedReachable(r, hp)
	}
	if errors.Is(err, httpx.ErrNonRoutable) {
		httpx.WriteError(w, wire.NewError(wire.CodePrivateAddress, "host resolves to a non-routable address").WithField("host"))
		return
	}
	resp := map[string]any{"host": host, "port": port, "reachable": err == nil, "test_id": "DIR-PROBE"}
	if err == nil {
		resp["latency_ms"] = lat.Milliseconds()
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, resp)
}

// guardedReachable dials with the SSRF control even in dev mode.
func (s *Server) guardedReachable(r *http.Request, hp string) (time.Duration, error) {
	d := httpx.GuardedDialer(s.cfg.ProbeTimeout)
	start := time.Now()
	c, err := d.DialContext(r.Context(), "tcp", hp)
	if err != nil {
		return 0, err
	}
	c.Close()
	return time.Since(start), nil
}

// Peer exchange rules (iicp-dir.md §3.6).
const (
	peerReplayWindow = 5 * time.Minute
	peerClockSkew    = 60 * time.Second
	maxPeersReturned = 20
	maxPeersBody     = 64 << 10
	maxReplayEntries = 100_000
)

type peersRequest struct {
	SenderID    string   `json:"sender_id"`
	KnownPeers  []string `json:"known_peers"`
	TimestampMs int64    `json:"timestamp_ms"`
}

// handlePeers is POST /v1/peers on the directory: Ed25519-signed gossip
// from a registered node (DIR-PEER-01, DIR-HB-05, SEC-NONCE-01). Any
// Authorization header is ignored: node tokens never authorize gossip.
func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	sigHex := r.Header.Get("X-IICP-Signature")
	if sigHex == "" {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "X-IICP-Signature is required"))
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPeersBody))
	if err != nil {
		httpx.WriteError(w, bodyError(err))
		return
	}
	var req peersRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		httpx.WriteError(w, bodyError(err))
		return
	}
	if req.SenderID == "" {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "sender_id is required"))
		return
	}
	sender := s.store.idx.get(strings.ToLower(req.SenderID))
	sig, err := hex.DecodeString(sigHex)
	if sender == nil || err != nil || !verifyGossip(sender.rec.PublicKey, raw, sig) {
		httpx.WriteError(w, wire.NewError(wire.CodeForbidden, "signature does not verify against a registered gossip key"))
		return
	}
	now := s.now()
	if !s.replay.add(sigHex, now) {
		httpx.WriteError(w, wire.NewError(wire.CodeConflict, "replayed signature"))
		return
	}
	if d := now.Sub(time.UnixMilli(req.TimestampMs)); d > peerClockSkew || d < -peerClockSkew {
		httpx.WriteError(w, verr("timestamp_ms", "timestamp_ms is outside the ±60 s window"))
		return
	}
	if ok, wait := s.peerLimit.Allow(sender.rec.NodeID, now); !ok {
		httpx.RateLimited(w, "gossip rate exceeded", wait)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"new_peers": s.newPeers(sender.rec.NodeID, req.KnownPeers, now), "receiver_id": "directory"})
}

func (s *Server) newPeers(sender string, known []string, now time.Time) []map[string]any {
	knownSet := make(map[string]struct{}, len(known))
	for _, k := range known {
		knownSet[strings.ToLower(k)] = struct{}{}
	}
	type cand struct {
		rec  *NodeRecord
		seen time.Time
	}
	var cands []cand
	s.store.idx.forAll(func(e *entry) {
		st := e.state.Load()
		if _, ok := knownSet[e.rec.NodeID]; ok || e.rec.NodeID == sender || !s.live(st, now) {
			return
		}
		cands = append(cands, cand{e.rec, st.LastSeen})
	})
	slices.SortFunc(cands, func(a, b cand) int { return b.seen.Compare(a.seen) })
	out := make([]map[string]any, 0, min(len(cands), maxPeersReturned))
	for _, c := range cands[:min(len(cands), maxPeersReturned)] {
		out = append(out, map[string]any{"node_id": c.rec.NodeID, "endpoint": c.rec.Endpoint,
			"region": c.rec.Region, "last_seen_ms": c.seen.UnixMilli()})
	}
	return out
}

// verifyGossip checks an Ed25519 detached signature against a registered
// public_key given as base64 (standard or URL) or hex.
func verifyGossip(pubText string, body, sig []byte) bool {
	if pubText == "" || len(sig) != ed25519.SignatureSize {
		return false
	}
	var pub []byte
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(pubText); err == nil && len(b) == ed25519.PublicKeySize {
			pub = b
			break
		}
	}
	return pub != nil && ed25519.Verify(pub, bytes.Clone(body), sig)
}

// replayCache remembers gossip signatures for the replay window, bounded in size.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// add records sig; false means it was already seen within the window.
func (c *replayCache) add(sig string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = make(map[string]time.Time)
	}
	if t, ok := c.seen[sig]; ok && now.Sub(t) < peerReplayWindow {
		return false
	}
	if len(c.seen) >= maxReplayEntries {
		c.sweepLocked(now)
		if len(c.seen) >= maxReplayEntries {
			return false // fail closed under a flood
		}
	}
	c.seen[sig] = now
	return true
}

func (c *replayCache) sweep(now time.Time) {
	c.mu.Lock()
	c.sweepLocked(now)
	c.mu.Unlock()
}

func (c *replayCache) sweepLocked(now time.Time) {
	for k, t := range c.seen {
		if now.Sub(t) >= peerReplayWindow {
			delete(c.seen, k)
		}
	}
}
