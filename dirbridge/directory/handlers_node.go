package directory

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// handleMe is GET /v1/me (DIR-ADDR-04): the owner sees its current observed
// address, never the history (DIR-ADDR-07).
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	e := s.tokens.verify(s.store.idx, bearer(r))
	if e == nil {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "missing or invalid node token"))
		return
	}
	st := e.state.Load()
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"node_id": e.rec.NodeID, "observed_source_ip": st.ObservedIP, "endpoint": e.rec.Endpoint,
	})
}

// nodeDetail is GET /v1/node/{id}: the node with capabilities, probation
// and the ADR-044 health block. Address data is never included.
type nodeDetail struct {
	dispatchNode
	Status       string     `json:"status"`
	DormantSince *time.Time `json:"dormant_since"`
	Probation    bool       `json:"probation"`
	PublicKey    *string    `json:"public_key"`
	Health       healthInfo `json:"health"`
}

type healthInfo struct {
	Score          int                       `json:"score"` // 0–100 (DIR-NODE-HEALTH-01)
	Label          string                    `json:"label"`
	Observed       bool                      `json:"observed"`
	Confidence     string                    `json:"confidence"`
	EvidenceLevel  string                    `json:"evidence_level"`
	LatencyMsBasis string                    `json:"latency_ms_basis"`
	Components     map[string]map[string]any `json:"components"`
	EvaluatedAt    time.Time                 `json:"evaluated_at"`
}

func (s *Server) handleNode(w http.ResponseWriter, r *http.Request) {
	e := s.store.idx.get(strings.ToLower(r.PathValue("id")))
	if e == nil {
		httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "node_id is not registered"))
		return
	}
	now := s.now()
	st := e.state.Load()
	live := s.live(st, now)
	c := scored{e: e, st: st, score: score(e.rec, st, "", now)}
	d := nodeDetail{
		dispatchNode: s.dispatchView(c, "", now), Status: "active", DormantSince: st.DormantSince,
		Probation: !s.graduated(e.rec, st, now), PublicKey: optional(e.rec.PublicKey),
		Health: s.health(e.rec.NodeID, st, live, now),
	}
	if !live {
		d.Status, d.Available = "dormant", false
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, d)
}

func (s *Server) health(nodeID string, st *nodeState, live bool, now time.Time) healthInfo {
	obs := s.evidence.observed(nodeID)
	h := healthScore(st, live, obs)
	reach, basis := 0.0, "none"
	if live {
		reach = 1
	}
	lat := map[string]any{"score": noLatencyEvidence, "observed": false}
	switch {
	case obs != nil:
		basis = "multi_proxy_ema"
		lat = map[string]any{"score": latencyCurve(*obs), "observed": true, "observed_latency_ms": *obs}
	case st.SLAP95Ms != nil:
		basis = "declared_sla_p95"
		lat = map[string]any{"score": latencyCurve(float64(*st.SLAP95Ms)), "observed": false}
	}
	if !live {
		lat["score"] = 0.0
	}
	return healthInfo{
		Score: int(math.Round(h * 100)), Label: healthLabel(h, live), Observed: false,
		Confidence: "low", EvidenceLevel: "heartbeat", LatencyMsBasis: basis, EvaluatedAt: now.UTC(),
		Components: map[string]map[string]any{
			"liveness":     {"score": reach, "last_seen": st.LastSeen.UTC()},
			"reachability": s.reachComponent(st, reach, now),
			"latency":      lat,
		},
	}
}

// handleRegistryNode is GET /v1/registry/nodes/{id}: public fields only,
// addressed by full id or by its 8-character prefix.
func (s *Server) handleRegistryNode(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(r.PathValue("id"))
	e := s.store.idx.get(id)
	if e == nil && len(id) == prefixLen {
		e = s.store.idx.byPrefixUnique(id)
	}
	if e == nil {
		httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "no registered node with this id or prefix"))
		return
	}
	now := s.now()
	st := e.state.Load()
	p := s.publicView(scored{e: e, st: st, score: score(e.rec, st, "", now)}, "", now)
	intents := make([]string, 0, len(e.modalities))
	for _, im := range e.modalities {
		intents = append(intents, im.intent)
	}
	slices.Sort(intents)
	w.Header().Set("Cache-Control", "public, max-age=10")
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"node": p, "intents": intents, "view": "public", "route_fields_present": false})
}

// Bootstrap limits (iicp-dir.md §3.5).
const (
	defaultBootstrapLimit = 5
	maxBootstrapLimit     = 50
)

// bootstrapPeer is the lightweight dial record (no scores, no capabilities);
// extensions carry meshnode.p2p (libp2p peer ID and multiaddrs).
type bootstrapPeer struct {
	NodeID     string         `json:"node_id"`
	Endpoint   string         `json:"endpoint"`
	Region     string         `json:"region"`
	LastSeen   time.Time      `json:"last_seen"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func (s *Server) handleBootstrap(w http.ResponseWriter, r *http.Request) {
	limit := defaultBootstrapLimit
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			httpx.WriteError(w, verr("limit", "limit must be a positive integer"))
			return
		}
		limit = min(n, maxBootstrapLimit)
	}
	now := s.now()
	var live []*entry
	var seen []time.Time
	s.store.idx.forAll(func(e *entry) {
		if st := e.state.Load(); s.live(st, now) && st.Available && !st.Reach.unreachable() {
			live = append(live, e)
			seen = append(seen, st.LastSeen)
		}
	})
	order := make([]int, len(live))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return seen[b].Compare(seen[a]) })
	peers := make([]bootstrapPeer, 0, min(limit, len(order)))
	for _, i := range order[:min(limit, len(order))] {
		rec := live[i].rec
		p := bootstrapPeer{NodeID: rec.NodeID, Endpoint: rec.Endpoint, Region: rec.Region, LastSeen: seen[i].UTC()}
		if len(rec.Extensions) > 0 {
			p.Extensions = make(map[string]any, len(rec.Extensions))
			for k, v := range rec.Extensions {
				p.Extensions[k] = v
			}
		}
		peers = append(peers, p)
	}
	w.Header().Set("Cache-Control", "public, max-age=5")
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"peers": peers, "count": len(peers)})
}

// handleStats is GET /v1/stats (iicp-dir.md §3.9b, DIR-STATS-01).
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	var scores []float64
	dist := map[string]int{"healthy": 0, "degraded": 0, "impaired": 0, "critical": 0, "offline": 0}
	byLang := map[string]int{"rust": 0, "python": 0, "typescript": 0, "browser": 0, "go": 0, "unknown": 0}
	byVersion := map[string]int{}
	s.store.idx.forAll(func(e *entry) {
		st := e.state.Load()
		live := s.live(st, now)
		h := healthScore(st, live, s.evidence.observed(e.rec.NodeID))
		dist[healthLabel(h, live)]++
		if !live {
			return
		}
		scores = append(scores, h)
		lang := strings.ToLower(e.rec.SDKLanguage)
		if _, ok := byLang[lang]; !ok {
			lang = "unknown"
		}
		byLang[lang]++
		v := e.rec.SDKCompatVersion
		if v == "" {
			v = e.rec.SDKVersion
		}
		if v == "" {
			v = "unknown"
		}
		byVersion[v]++
	})
	w.Header().Set("Cache-Control", "public, max-age=10")
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"server":        map[string]any{"active_nodes": len(scores), "registered_nodes": s.store.idx.count(), "version": s.cfg.Version},
		"mesh_health":   meshHealth(scores, dist),
		"sdk_adoption":  map[string]any{"total_active": len(scores), "by_language": byLang, "by_version": byVersion},
		"generated_at":  now.UTC(),
		"window_policy": map[string]any{"stale_after_s": int(s.cfg.StaleAfter.Seconds())},
	})
}

// meshHealth is the ADR-044 aggregate: median over active nodes, labelled
// insufficient_sample under 3 nodes and unavailable with none.
func meshHealth(scores []float64, dist map[string]int) map[string]any {
	out := map[string]any{"score": 0.0, "label": "unavailable", "mean": 0.0, "p10": 0.0,
		"distribution": dist, "sample": len(scores), "basis": "active_provider_nodes", "window": "live"}
	if len(scores) == 0 {
		return out
	}
	slices.Sort(scores)
	sum := 0.0
	for _, v := range scores {
		sum += v
	}
	med := scores[len(scores)/2]
	if len(scores)%2 == 0 {
		med = (scores[len(scores)/2-1] + scores[len(scores)/2]) / 2
	}
	out["score"] = round4(med)
	out["mean"] = round4(sum / float64(len(scores)))
	out["p10"] = round4(scores[int(math.Floor(0.1*float64(len(scores)-1)))])
	out["label"] = healthLabel(med, true)
	if len(scores) < 3 {
		out["label"] = "insufficient_sample"
	}
	return out
}

func round4(v float64) float64 { return math.Round(v*10000) / 10000 }

// handleCredits answers the credit routes whose auth boundary the spec
// fixes (DIR-CRED-01..03) although the credit extension is not offered:
// 401 without a valid node token, 503 with one.
func (s *Server) handleCredits(w http.ResponseWriter, r *http.Request) {
	if s.tokens.verify(s.store.idx, bearer(r)) == nil {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "node token required"))
		return
	}
	httpx.WriteError(w, wire.NewError(wire.CodeUnavailable, "the credits extension is not enabled on this directory"))
}

// baseURL is the directory URL the caller used, without an /api suffix:
// the ACK "directory" and the ticket/consumer-token "iss".
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(strings.TrimRight(s.cfg.PublicURL, "/"), "/api")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
