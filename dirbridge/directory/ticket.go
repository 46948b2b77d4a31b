package directory

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
	"github.com/meshnode/meshnode/wire/token"
)

// forbiddenTicketFields are task-body fields a control-plane ticket request
// must never carry (iicp-dir.md §3.4, fixture security.task_payload_fields_forbidden).
var forbiddenTicketFields = []string{"prompt", "messages", "payload", "input", "chat", "content", "response", "task"}

// Ticket request bounds.
const (
	maxExcludePrefixes = 10
	jtiBytes           = 12 // 24 lowercase hex characters
	ticketIDPrefixLen  = 12
)

var idPrefixRe = regexp.MustCompile(`^[0-9a-f-]{1,36}$`)

type ticketRequest struct {
	Intent                string   `json:"intent"`
	NodeID                string   `json:"node_id"`
	NodeIDPrefix          string   `json:"node_id_prefix"`
	ExcludeNodeIDPrefixes []string `json:"exclude_node_id_prefixes"`
	QoS                   string   `json:"qos"`
	Region                string   `json:"region"`
	Modality              string   `json:"modality"`
}

// handleTicket is POST /v1/dispatch/ticket: one concrete route plus an
// Ed25519-signed, prompt-free route ticket (DIR-DISPATCH-01..05).
func (s *Server) handleTicket(w http.ResponseWriter, r *http.Request) {
	req, e := s.decodeTicket(w, r)
	if e != nil {
		s.metrics.tickets.WithLabelValues("refused").Inc()
		httpx.WriteError(w, e)
		return
	}
	now := s.now()
	q := query{intent: req.Intent, qos: req.QoS, region: req.Region, modality: req.Modality}
	// Two candidates are enough to tell whether a prefix selector is unique.
	cands := s.candidates(&q, now, 2, func(en *entry) bool {
		id := en.rec.NodeID
		for _, p := range req.ExcludeNodeIDPrefixes {
			if strings.HasPrefix(id, p) {
				return true
			}
		}
		return (req.NodeID != "" && id != req.NodeID) || (req.NodeIDPrefix != "" && !strings.HasPrefix(id, req.NodeIDPrefix))
	})
	if len(cands) == 0 {
		s.metrics.tickets.WithLabelValues("no_route").Inc()
		httpx.WriteError(w, wire.NewError(wire.CodeNoRoute, "no eligible route for this intent"))
		return
	}
	if req.NodeIDPrefix != "" && len(cands) > 1 {
		s.metrics.tickets.WithLabelValues("refused").Inc()
		httpx.WriteError(w, verr("node_id_prefix", "node_id_prefix matches more than one node"))
		return
	}
	c := cands[0]
	jti := make([]byte, jtiBytes)
	if _, err := rand.Read(jti); err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "could not issue a ticket"))
		return
	}
	claims := token.RouteTicket{
		V: 1, Typ: token.TicketType, Iss: s.baseURL(r), Aud: token.TicketAudience,
		JTI: hex.EncodeToString(jti), NodeID: c.e.rec.NodeID, Intent: req.Intent,
		IAT: now.Unix(), Exp: now.Add(s.cfg.TicketTTL).Unix(),
	}
	tok, err := token.SignRouteTicket(s.signKey, claims)
	if err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "could not issue a ticket"))
		return
	}
	s.metrics.tickets.WithLabelValues("issued").Inc()
	rec := c.e.rec
	cx := rec.CXPublicKey
	if cx == nil {
		cx = json.RawMessage("null")
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{
		"ticket": tok, "ticket_id_prefix": claims.JTI[:ticketIDPrefixLen], "expires_at": claims.Exp,
		"issued_at": claims.IAT, "issuer": claims.Iss, "intent": req.Intent, "node_id": rec.NodeID,
		"node_id_prefix": idPrefix(rec.NodeID), "score": c.score,
		// The deployed SDKs build their discover Node from route: the Rust
		// client requires score, available and region (iicp-client-rust
		// src/client.rs ticketed_candidates, src/types.rs Node).
		"route": map[string]any{
			"node_id": rec.NodeID, "endpoint": rec.Endpoint, "transport_endpoint": optional(rec.TransportEndpoint),
			"cx_public_key": cx, "extensions": rec.Extensions,
			"score": c.score, "available": c.st.Available, "region": rec.Region, "load": normalizedLoad(rec, c.st),
		},
		"algorithm": "ed25519", "data_class": "ticketed_route_dispatch", "route_fields_present": true,
		"prompt_payload_accepted": false,
	})
}

// decodeTicket refuses payload-bearing requests before anything else,
// without echoing what was sent, then validates the selector.
func (s *Server) decodeTicket(w http.ResponseWriter, r *http.Request) (*ticketRequest, *wire.Error) {
	var raw map[string]json.RawMessage
	if e := decodeBody(w, r, maxSmallBody, &raw); e != nil {
		return nil, e
	}
	for k := range raw {
		lk := strings.ToLower(k)
		for _, f := range forbiddenTicketFields {
			if lk == f {
				return nil, verr(f, "dispatch tickets are control-plane only: task payload fields are refused")
			}
		}
	}
	var req ticketRequest
	buf, _ := json.Marshal(raw) // re-encoding decoded JSON cannot fail
	if err := json.Unmarshal(buf, &req); err != nil {
		return nil, bodyError(err)
	}
	if req.Intent == "" {
		return nil, verr("intent", "intent is required")
	}
	if e := s.checkQueryIntent(req.Intent); e != nil {
		return nil, e
	}
	req.NodeID, req.NodeIDPrefix = strings.ToLower(req.NodeID), strings.ToLower(req.NodeIDPrefix)
	switch {
	case req.NodeID != "" && req.NodeIDPrefix != "":
		return nil, verr("node_id_prefix", "node_id and node_id_prefix cannot be combined")
	case req.NodeID != "" && !uuidRe.MatchString(req.NodeID):
		return nil, verr("node_id", "node_id must be a UUID")
	case req.NodeIDPrefix != "" && !idPrefixRe.MatchString(req.NodeIDPrefix):
		return nil, verr("node_id_prefix", "node_id_prefix must be a lowercase hex prefix")
	case req.QoS != "" && !validQoS[req.QoS]:
		return nil, verr("qos", "qos must be realtime, interactive, batch or best-effort")
	case req.Modality != "" && !validModalities[req.Modality]:
		return nil, verr("modality", "modality must be text, image, audio or video")
	case req.Region != "" && !regionRe.MatchString(req.Region):
		return nil, verr("region", "region is not a valid tag")
	case len(req.ExcludeNodeIDPrefixes) > maxExcludePrefixes:
		return nil, verr("exclude_node_id_prefixes", "at most ten excluded prefixes")
	}
	for i, p := range req.ExcludeNodeIDPrefixes {
		p = strings.ToLower(p)
		if !idPrefixRe.MatchString(p) {
			return nil, verr("exclude_node_id_prefixes", "excluded prefixes must be lowercase hex prefixes")
		}
		req.ExcludeNodeIDPrefixes[i] = p
	}
	return &req, nil
}

// handleDirectoryKey is GET /v1/directory-key (iicp-dir.md §3.12).
func (s *Server) handleDirectoryKey(w http.ResponseWriter, r *http.Request) {
	if ok, wait := s.keyLimit.Allow(s.limitKey(r), s.now()); !ok {
		s.metrics.rateLimited.WithLabelValues("directory_key").Inc()
		httpx.RateLimited(w, "too many directory-key requests", wait)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"public_key": hex.EncodeToString(s.PublicKey()), "algorithm": "ed25519"})
}

// handleConsumerToken is POST /v1/consumer-token: a node (Bearer node
// token) obtains a short-lived token for calling target_node_id.
func (s *Server) handleConsumerToken(w http.ResponseWriter, r *http.Request) {
	caller, now, ok := s.nodeRequest(w, r, s.ctLimit, "consumer_token")
	if !ok {
		return
	}
	var body struct {
		TargetNodeID string `json:"target_node_id"`
		Intent       string `json:"intent"`
		// SingleUse (a meshnode addition) asks for a jti: nodes then accept
		// the token once. Without it the token is reusable until exp, as
		// deployed SDKs expect (they cache one per node and intent).
		SingleUse bool `json:"single_use"`
	}
	if e := decodeBody(w, r, maxSmallBody, &body); e != nil {
		httpx.WriteError(w, e)
		return
	}
	switch {
	case !uuidRe.MatchString(body.TargetNodeID):
		httpx.WriteError(w, verr("target_node_id", "target_node_id must be a UUID"))
		return
	case body.Intent == "":
		httpx.WriteError(w, verr("intent", "intent is required (a URN or \"*\")"))
		return
	case body.Intent != "*":
		if e := s.checkQueryIntent(body.Intent); e != nil {
			httpx.WriteError(w, e)
			return
		}
	}
	target := s.store.idx.get(strings.ToLower(body.TargetNodeID))
	if target == nil {
		httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "target_node_id is not registered"))
		return
	}
	c := token.Consumer{V: 1, Iss: s.baseURL(r), Sub: caller.rec.NodeID, Aud: target.rec.NodeID,
		Intent: body.Intent, IAT: now.Unix(), Exp: now.Add(s.cfg.ConsumerTokenTTL).Unix()}
	if body.SingleUse {
		// A jti makes the token single-use at nodes (wire/token Replay): a
		// token captured on one path cannot be spent again.
		jti := make([]byte, token.JTIMinLen/2)
		if _, err := rand.Read(jti); err != nil {
			httpx.WriteError(w, wire.NewError(wire.CodeInternal, "could not issue a token"))
			return
		}
		c.JTI = hex.EncodeToString(jti)
	}
	tok, err := token.SignConsumer(s.signKey, c)
	if err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "could not issue a token"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": c.Exp,
		"caller_node_id": c.Sub, "target_node_id": c.Aud, "intent": c.Intent, "single_use": c.JTI != ""})
}

// nodeRequest admits a request a registered node makes for itself (Bearer
// node token): the caller's entry, or 401; then the caller's per-node
// budget in limit, or 429 counted under label. ok false: answered.
func (s *Server) nodeRequest(w http.ResponseWriter, r *http.Request, limit *httpx.Limiter, label string) (caller *entry, now time.Time, ok bool) {
	caller = s.tokens.verify(s.store.idx, bearer(r))
	if caller == nil {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "missing or invalid node token"))
		return nil, now, false
	}
	now = s.now()
	if allowed, wait := limit.Allow(caller.rec.NodeID, now); !allowed {
		s.metrics.rateLimited.WithLabelValues(label).Inc()
		httpx.RateLimited(w, "too many "+strings.ReplaceAll(label, "_", "-")+" requests", wait)
		return nil, now, false
	}
	return caller, now, true
}
