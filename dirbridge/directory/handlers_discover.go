package directory

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// discoverCacheControl is DIR-DISC-08's exact header: live tunnel and relay
// routes must stay fresh across endpoint rotation.
const discoverCacheControl = "public, max-age=5, s-maxage=10, stale-while-revalidate=5"

// Discover limits (iicp-dir.md §3.3).
const (
	defaultDiscoverLimit = 10
	maxDiscoverLimit     = 50
	// realtimeProbationFactor: realtime needs 10× the interactive task
	// count (1000 at the default of 100) and reputation ≥ 0.8 (§3.4).
	realtimeProbationFactor = 10
	realtimeMinReputation   = 0.8
)

var validQoS = map[string]bool{wire.QoSRealtime: true, wire.QoSInteractive: true, wire.QoSBatch: true, wire.QoSBestEffort: true}

// query is a parsed discover (or ticket) selection.
type query struct {
	intent, qos, region, modality string
	limit                         int
	minReputation, minScore       float64
	maxMultiplier                 float64 // 0 = no bound
	cipCapable                    bool
	public                        bool
}

// scored is one eligible candidate.
type scored struct {
	e     *entry
	st    *nodeState
	score float64
}

func (s *Server) handleDiscover(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q, e := s.parseDiscover(r.URL.Query())
	if e != nil {
		writeError(w, e)
		return
	}
	now := s.now()
	cands := s.candidates(&q, now, q.limit, nil)
	nodes := make([]any, 0, len(cands))
	for _, c := range cands {
		if q.public {
			nodes = append(nodes, s.publicView(c, q.intent, now))
		} else {
			nodes = append(nodes, s.dispatchView(c, q.intent, now))
		}
	}
	resp := map[string]any{
		"nodes": nodes, "count": len(nodes), "query_ms": time.Since(start).Milliseconds(),
		"relay_available": false, "dispatch_ticket_endpoint": "/v1/dispatch/ticket", "ticketed_dispatch_available": true,
	}
	if q.public {
		resp["view"], resp["data_class"], resp["route_fields_present"] = "public", "public_presentation", false
		resp["redaction"] = map[string]string{
			"node_id": "node_id_prefix_only", "endpoint": "omitted", "transport_endpoint": "omitted",
			"transport_metadata": "omitted", "cx_public_key": "key_ready_boolean_only", "extensions": "omitted",
		}
	} else {
		resp["view"], resp["data_class"], resp["route_fields_present"] = "dispatch", "route_dispatch", true
	}
	w.Header().Set("Cache-Control", discoverCacheControl)
	writeJSON(w, http.StatusOK, resp)
}

// parseDiscover validates the §3.3 query parameters; every bad value is a 422.
func (s *Server) parseDiscover(v url.Values) (query, *wire.Error) {
	q := query{intent: v.Get("intent"), qos: v.Get("qos"), region: v.Get("region"), modality: v.Get("modality"), limit: defaultDiscoverLimit}
	if q.intent == "" {
		return q, verr("intent", "intent is required")
	}
	if e := s.checkQueryIntent(q.intent); e != nil {
		return q, e
	}
	if q.qos != "" && !validQoS[q.qos] {
		return q, verr("qos", "qos must be realtime, interactive, batch or best-effort")
	}
	if q.region != "" && !regionRe.MatchString(q.region) {
		return q, verr("region", "region is not a valid tag")
	}
	if q.modality != "" && !validModalities[q.modality] {
		return q, verr("modality", "modality must be text, image, audio or video")
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, verr("limit", "limit must be a positive integer")
		}
		q.limit = min(n, maxDiscoverLimit)
	}
	var e *wire.Error
	if q.minReputation, e = unitParam(v, "min_reputation"); e != nil {
		return q, e
	}
	if q.minScore, e = unitParam(v, "min_quality_score"); e != nil {
		return q, e
	}
	if m := v.Get("max_multiplier"); m != "" {
		f, err := strconv.ParseFloat(m, 64)
		if err != nil || f < 0 {
			return q, verr("max_multiplier", "max_multiplier must be a non-negative number")
		}
		q.maxMultiplier = f
	}
	if c := v.Get("cip_capable"); c != "" {
		b, err := strconv.ParseBool(c)
		if err != nil {
			return q, verr("cip_capable", "cip_capable must be a boolean")
		}
		q.cipCapable = b
	}
	switch v.Get("view") {
	case "", "dispatch":
	case "public":
		q.public = true
	default:
		return q, verr("view", "view must be dispatch or public")
	}
	return q, nil
}

// checkQueryIntent validates an intent URN and applies the risk policy.
func (s *Server) checkQueryIntent(intent string) *wire.Error {
	if !validIntent(intent) {
		return verr("intent", "intent must be urn:iicp:intent:<domain>:<action>:v<N>")
	}
	if refused, why := refusedIntent(intent, s.cfg.AllowHighRisk); refused {
		return verr("intent", why)
	}
	return nil
}

func unitParam(v url.Values, name string) (float64, *wire.Error) {
	raw := v.Get(name)
	if raw == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || f < 0 || f > 1 {
		return 0, verr(name, name+" must be a number in [0,1]")
	}
	return f, nil
}

// candidates returns the best k nodes eligible now for q, sorted by score
// descending (ties by node_id for a stable order). It walks only the
// intent's bucket of the in-memory index, never the whole table, and keeps
// a bounded top-k instead of sorting every candidate.
func (s *Server) candidates(q *query, now time.Time, k int, skip func(*entry) bool) []scored {
	top := make([]scored, 0, k)
	s.store.idx.forIntent(q.intent, func(e *entry) {
		st := e.state.Load()
		if !st.Available || !s.live(st, now) || st.Reputation < q.minReputation {
			return
		}
		if q.modality != "" && !contains(e.modalities[q.intent], q.modality) {
			return
		}
		if q.cipCapable && !cipCapable(e.rec) {
			return
		}
		if q.maxMultiplier > 0 && defaultMultiplier > q.maxMultiplier {
			return
		}
		if !s.passesProbation(q.qos, st) || (skip != nil && skip(e)) {
			return
		}
		sc := score(e.rec, st, q.region, now)
		if sc < minScore || sc < q.minScore {
			return
		}
		c := scored{e: e, st: st, score: sc}
		if len(top) == k && !better(c, top[k-1]) {
			return
		}
		i := len(top)
		if i < k {
			top = append(top, c)
		} else {
			i = k - 1
		}
		for ; i > 0 && better(c, top[i-1]); i-- {
			top[i] = top[i-1]
		}
		top[i] = c
	})
	return top
}

// better orders candidates: higher score first, then lower node_id.
func better(a, b scored) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.e.rec.NodeID < b.e.rec.NodeID
}

// defaultMultiplier is every node's credit_cost_multiplier: no node declares
// pricing here (ADR-019 default 1.0).
const defaultMultiplier = 1.0

// passesProbation applies the §3.4 QoS probation filter.
func (s *Server) passesProbation(qos string, st *nodeState) bool {
	switch qos {
	case wire.QoSInteractive:
		return st.CompletedTasks >= s.cfg.ProbationMinTasks
	case wire.QoSRealtime:
		return st.CompletedTasks >= realtimeProbationFactor*s.cfg.ProbationMinTasks && st.Reputation >= realtimeMinReputation
	}
	return true
}

func cipCapable(rec *NodeRecord) bool {
	return rec.AllowRemoteInference || rec.CIPLevel == "CIP-Provider" || rec.CIPLevel == "CIP-Full"
}

// dispatchNode is the route-bearing discover entry (iicp-dir.md §3.4).
type dispatchNode struct {
	NodeID            string  `json:"node_id"`
	Endpoint          string  `json:"endpoint"`
	TransportEndpoint *string `json:"transport_endpoint"`
	publicNode
	Load                 float64                    `json:"load"`
	ActiveJobs           int                        `json:"active_jobs"`
	MaxConcurrent        int                        `json:"max_concurrent"`
	CompletedTasks       int64                      `json:"completed_tasks_count"`
	CIPPolicy            cipPolicy                  `json:"cip_policy"`
	CXPublicKey          json.RawMessage            `json:"cx_public_key"`
	PrivacyRoutingStatus string                     `json:"privacy_routing_status"`
	Capabilities         []wire.Capability          `json:"capabilities"`
	Extensions           map[string]json.RawMessage `json:"extensions,omitempty"`
	SLAP95Ms             *int64                     `json:"sla_p95_ms,omitempty"`
	LastSeen             time.Time                  `json:"last_seen"`
	ReachabilityTier     string                     `json:"reachability_tier"`
	TransportMethod      *string                    `json:"transport_method"`
	Backend              *string                    `json:"backend"`
	SDKLanguage          *string                    `json:"sdk_language"`
	SDKVersion           *string                    `json:"sdk_version"`
	ImplementationName   *string                    `json:"implementation_name"`
	ImplementationVer    *string                    `json:"implementation_version"`
	SDKCompatVersion     *string                    `json:"sdk_compatibility_version"`
}

// publicNode holds the presentation-safe fields (view=public, registry).
type publicNode struct {
	NodeIDPrefix     string   `json:"node_id_prefix"`
	Region           string   `json:"region"`
	Score            float64  `json:"score"`
	Available        bool     `json:"available"`
	KeyReady         bool     `json:"key_ready"`
	ReputationScore  float64  `json:"reputation_score"`
	ReputationTier   string   `json:"reputation_tier"`
	CIPLevel         string   `json:"cip_conformance_level"`
	HealthLabel      string   `json:"health_label"`
	Models           []string `json:"models"`
	InputModalities  []string `json:"input_modalities"`
	RouteClass       string   `json:"route_class"`
	RegisteredIntent string   `json:"intent,omitempty"`
}

type cipPolicy struct {
	AllowRemoteInference  bool     `json:"allow_remote_inference"`
	AllowToolExecution    bool     `json:"allow_tool_execution"`
	AllowFileAccess       bool     `json:"allow_file_access"`
	PricingCreditsPer1000 *float64 `json:"pricing_credits_per_1000"`
}

func (s *Server) publicView(c scored, intent string, now time.Time) publicNode {
	live := s.live(c.st, now)
	h := healthScore(c.st, live)
	var models []string
	for _, cp := range c.e.rec.Capabilities {
		if intent == "" || cp.Intent == intent {
			for _, m := range cp.Models {
				if !contains(models, m) {
					models = append(models, m)
				}
			}
		}
	}
	mods := c.e.modalities[intent]
	if intent == "" {
		mods = nil
	}
	return publicNode{
		NodeIDPrefix: idPrefix(c.e.rec.NodeID), Region: c.e.rec.Region, Score: c.score,
		Available: c.st.Available && live, KeyReady: !isNullJSON(c.e.rec.CXPublicKey),
		ReputationScore: c.st.Reputation, ReputationTier: reputationTier(c.st.Reputation),
		CIPLevel: c.e.rec.CIPLevel, HealthLabel: healthLabel(h, live), Models: nonNil(models),
		InputModalities: nonNil(mods), RouteClass: routeClass(c.e.rec), RegisteredIntent: intent,
	}
}

func (s *Server) dispatchView(c scored, intent string, now time.Time) dispatchNode {
	rec := c.e.rec
	d := dispatchNode{
		NodeID: rec.NodeID, Endpoint: rec.Endpoint, TransportEndpoint: optional(rec.TransportEndpoint),
		publicNode: s.publicView(c, intent, now), Load: normalizedLoad(rec, c.st), ActiveJobs: c.st.ActiveJobs,
		MaxConcurrent: rec.Limits.MaxConcurrent, CompletedTasks: c.st.CompletedTasks,
		CIPPolicy:   cipPolicy{AllowRemoteInference: rec.AllowRemoteInference},
		CXPublicKey: rec.CXPublicKey, PrivacyRoutingStatus: "transitional",
		Capabilities: rec.Capabilities, Extensions: rec.Extensions, SLAP95Ms: c.st.SLAP95Ms,
		LastSeen: c.st.LastSeen.UTC(), ReachabilityTier: "direct", TransportMethod: optional(rec.TransportMethod),
		Backend: optional(rec.Backend), SDKLanguage: optional(rec.SDKLanguage), SDKVersion: optional(rec.SDKVersion),
		ImplementationName: optional(rec.ImplementationName), ImplementationVer: optional(rec.ImplementationVersion),
		SDKCompatVersion: optional(rec.SDKCompatVersion),
	}
	if d.CXPublicKey == nil {
		d.CXPublicKey = json.RawMessage("null")
	} else {
		d.PrivacyRoutingStatus = "key_ready"
	}
	return d
}

// routeClass is the public, route-free description of how a node is reached.
func routeClass(rec *NodeRecord) string {
	if rec.TransportMethod != "" {
		return rec.TransportMethod
	}
	return "direct"
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
