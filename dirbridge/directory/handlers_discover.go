package directory

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
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
	// item is the ranking item it came from (nil outside discover); it
	// caches the node's encoding.
	item *rankItem
	// idKey is item's idKey (zero outside discover: better then compares
	// the node IDs themselves).
	idKey uint64
}

func (s *Server) handleDiscover(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q, e := s.parseDiscover(r.URL.Query())
	if e != nil {
		httpx.WriteError(w, e)
		return
	}
	now := s.now()
	cands := s.candidates(&q, now, q.limit, nil)
	buf := discoverBufs.Get().(*[]byte)
	b := s.appendNodeList(append((*buf)[:0], `{"count":`...), &q, cands, now)
	b = strconv.AppendInt(append(b, `,"query_ms":`...), time.Since(start).Milliseconds(), 10)
	if q.public {
		b = append(b, publicListTail...)
	} else {
		b = append(b, dispatchListTail...)
	}
	h := w.Header()
	h.Set("Cache-Control", discoverCacheControl)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	if cap(b) <= maxPooledDiscoverBuf {
		*buf = b
		discoverBufs.Put(buf)
	}
}

// The NODELIST envelope around "nodes", in the key order encoding/json
// gives a map (the shape the handler always had), so a discover answer is
// one pass of appends over cached node fragments.
const (
	dispatchListHead = `,"data_class":"route_dispatch","dispatch_ticket_endpoint":"/v1/dispatch/ticket","nodes":[`
	publicListHead   = `,"data_class":"public_presentation","dispatch_ticket_endpoint":"/v1/dispatch/ticket","nodes":[`
	dispatchListTail = `,"relay_available":false,"route_fields_present":true,"ticketed_dispatch_available":true,"view":"dispatch"}` + "\n"
	publicListTail   = `,"redaction":{"cx_public_key":"key_ready_boolean_only","endpoint":"omitted","extensions":"omitted",` +
		`"node_id":"node_id_prefix_only","transport_endpoint":"omitted","transport_metadata":"omitted"},` +
		`"relay_available":false,"route_fields_present":false,"ticketed_dispatch_available":true,"view":"public"}` + "\n"
	// maxPooledDiscoverBuf keeps one unusually large answer from pinning
	// its buffer in the pool.
	maxPooledDiscoverBuf = 256 << 10
)

var discoverBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// appendNodeList appends count, the fixed fields and the nodes array.
func (s *Server) appendNodeList(b []byte, q *query, cands []scored, now time.Time) []byte {
	b = strconv.AppendInt(b, int64(len(cands)), 10)
	view := 1
	if q.public {
		view = 0
		b = append(b, publicListHead...)
	} else {
		b = append(b, dispatchListHead...)
	}
	gen := s.operators.gen.Load() + s.evidence.gen.Load() // before building: a rename or new evidence meanwhile re-encodes next time
	for i, c := range cands {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, c.item.fragmentFor(view, q.region, c.score, gen, now.Unix(), operatorUntil(c.e.rec, now), func() []byte {
			var v any
			if q.public {
				v = s.publicView(c, q.intent, now)
			} else {
				v = s.dispatchView(c, q.intent, now)
			}
			raw, err := json.Marshal(v)
			if err != nil { // our own types: cannot happen; keep the list valid
				return []byte("null")
			}
			return raw
		})...)
	}
	return append(b, ']')
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

// better orders candidates: higher score first, then lower node_id.
func better(a, b scored) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	if a.idKey != b.idKey { // both from ranking items: no pointer chase to the record
		return a.idKey < b.idKey
	}
	return a.e.rec.NodeID < b.e.rec.NodeID
}

// idKey orders node IDs by their first 8 bytes (zero-padded), big-endian:
// idKey(a) < idKey(b) implies a < b, and equal keys fall back to the
// strings. Ranking items carry it so tie-breaks between equal scores do
// not read each node's record.
func idKey(id string) uint64 {
	var k uint64
	for i := 0; i < 8; i++ {
		k <<= 8
		if i < len(id) {
			k |= uint64(id[i])
		}
	}
	return k
}

// defaultMultiplier is every node's credit_cost_multiplier: no node declares
// pricing here (ADR-019 default 1.0).
const defaultMultiplier = 1.0

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
	ReputationModel  string   `json:"reputation_model"`
	ReputationTier   string   `json:"reputation_tier"`
	CIPLevel         string   `json:"cip_conformance_level"`
	HealthLabel      string   `json:"health_label"`
	Models           []string `json:"models"`
	InputModalities  []string `json:"input_modalities"`
	RouteClass       string   `json:"route_class"`
	RegisteredIntent string   `json:"intent,omitempty"`
	operatorView
	evidenceView
}

type cipPolicy struct {
	AllowRemoteInference  bool     `json:"allow_remote_inference"`
	AllowToolExecution    bool     `json:"allow_tool_execution"`
	AllowFileAccess       bool     `json:"allow_file_access"`
	PricingCreditsPer1000 *float64 `json:"pricing_credits_per_1000"`
}

func (s *Server) publicView(c scored, intent string, now time.Time) publicNode {
	live := s.live(c.st, now)
	h := healthScore(c.st, live, s.evidence.observed(c.e.rec.NodeID))
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
	mods := c.e.modalities.get(intent)
	if intent == "" {
		mods = nil
	}
	return publicNode{
		NodeIDPrefix: idPrefix(c.e.rec.NodeID), Region: c.e.rec.Region, Score: c.score,
		Available: c.st.Available && live && !c.st.Reach.unreachable(), KeyReady: !isNullJSON(c.e.rec.CXPublicKey),
		ReputationScore: c.st.Reputation, ReputationModel: reputationModel, ReputationTier: reputationTier(c.st.Reputation),
		CIPLevel: c.e.rec.CIPLevel, HealthLabel: healthLabel(h, live), Models: nonNil(models),
		InputModalities: nonNil(mods), RouteClass: routeClass(c.e.rec), RegisteredIntent: intent,
		operatorView: s.operators.view(c.e.rec.operatorAt(now)), evidenceView: s.evidence.view(c.e.rec.NodeID, now),
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
		LastSeen: c.st.LastSeen.UTC(), ReachabilityTier: c.st.Reach.tier(), TransportMethod: optional(rec.TransportMethod),
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
