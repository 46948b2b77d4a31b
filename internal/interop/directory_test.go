package interop_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/internal/interop"
	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/meshnode/meshnode/wire"
)

// TestSDKTicketVerifier_Fixture pins the test's SDK-side verifier to the
// spec vectors (fixtures/profiles/dispatch-route-ticket-v1.json), so the
// directory is checked by a verifier that behaves as the SDKs do.
func TestSDKTicketVerifier_Fixture(t *testing.T) {
	var fx struct {
		PublicKeyHex string `json:"public_key_hex"`
		Valid        struct {
			Token string `json:"token"`
		} `json:"valid"`
		WrongAudience struct {
			Token string `json:"token"`
		} `json:"wrong_audience"`
		Vectors []struct {
			Name, Token, Issuer, Expected string
			NodeID                        string `json:"node_id"`
			Intent                        string `json:"intent"`
			NowS                          int64  `json:"now_s"`
		} `json:"validation_vectors"`
	}
	if err := json.Unmarshal(spectest.Read(t, "fixtures", "profiles", "dispatch-route-ticket-v1.json"), &fx); err != nil || len(fx.Vectors) < 7 {
		t.Fatalf("fixture: %v (%d vectors)", err, len(fx.Vectors))
	}
	for _, v := range fx.Vectors {
		tok := v.Token
		switch tok {
		case "valid":
			tok = fx.Valid.Token
		case "valid+0":
			tok = fx.Valid.Token + "0"
		case "wrong_audience":
			tok = fx.WrongAudience.Token
		}
		_, ok := sdkVerifyTicket(tok, fx.PublicKeyHex, v.Issuer, v.NodeID, v.Intent, v.NowS)
		if ok != (v.Expected == "valid") {
			t.Errorf("%s: verified=%v, expected %s", v.Name, ok, v.Expected)
		}
	}
}

// sdkProvider is a provider node as the deployed SDK registers it.
type sdkProvider struct {
	node    *nodeHarness
	dir     *dirHarness
	nodeID  string
	token   string
	cxKey   json.RawMessage // cx_public_key exactly as registered
	dirAPI  string          // the SDK's directory_url (ends in /api)
	regBody map[string]any
}

// registerPython replays the Python SDK's REGISTER body
// (src/iicp_client/node.py IicpNode.register, including the NAT/SDK
// provenance fields and an SDK-form cx_public_key) and its first heartbeat.
func registerPython(t *testing.T, dir *dirHarness, node *nodeHarness) *sdkProvider {
	t.Helper()
	pk := node.ring.PublicKey()
	raw, _ := b64.DecodeString(pk.Key)
	cxKey := json.RawMessage(`{"algorithm":"X25519","encoding":"base64url","key":"` + pk.Key + `","key_id":"` + sdkKeyID(raw) + `"}`)
	p := &sdkProvider{node: node, dir: dir, nodeID: testNodeID, cxKey: cxKey, dirAPI: dir.base + "/api"}
	p.regBody = map[string]any{
		"endpoint": node.url, "region": "eu-central",
		"capabilities": []map[string]any{{"intent": wire.IntentChat, "models": []string{"meshnode-echo"},
			"max_tokens": 8192, "input_modalities": []string{"text"}}},
		"limits":           map[string]any{"max_concurrent": 4, "tokens_per_min": 10000},
		"node_id":          testNodeID,
		"transport_method": "direct", "nat_type": "unknown", "exposure_mode": "ipv4_public_direct",
		"transport_metadata": map[string]any{"tier": 1, "detection_log_tail": []string{}},
		"sdk_language":       "python", "sdk_version": "0.38.2",
		"cx_public_key": cxKey,
	}
	st, b := dir.do(t, http.MethodPost, p.dirAPI+"/v1/register", "", p.regBody)
	if st != http.StatusCreated {
		t.Fatalf("DIR-REG-01 Python register: %d %s", st, b)
	}
	var ack map[string]any
	_ = json.Unmarshal(b, &ack)
	tok, _ := ack["node_token"].(string)
	if tok == "" {
		tok, _ = ack["token"].(string) // the SDK accepts either name
	}
	if len(tok) < 64 || ack["node_id"] != testNodeID {
		t.Fatalf("ACK %s", b)
	}
	p.token = tok
	// Python heartbeat: token in body and header, status/max_concurrent,
	// drained task counters (leaves probation at ProbationMinTasks=1).
	st, b = dir.do(t, http.MethodPost, p.dirAPI+"/v1/heartbeat", tok, map[string]any{
		"node_id": testNodeID, "node_token": tok, "status": "available", "max_concurrent": 4,
		"metrics": map[string]any{"tasks_success": 1, "tasks_failed": 0},
	})
	var pong map[string]any
	if st != http.StatusOK || json.Unmarshal(b, &pong) != nil || pong["ok"] != true || pong["next_heartbeat_ms"] == nil {
		t.Fatalf("DIR-HB-01 Python heartbeat: %d %s", st, b)
	}
	return p
}

// TestDIR_SDKProviderAndConsumer replays a deployed provider SDK against a
// real meshnode directory (register, heartbeat, registry presence), then a
// deployed consumer SDK (discover, dispatch ticket, directory key, consumer
// token) and finally runs the task on the real node with the consumer token.
func TestDIR_SDKProviderAndConsumer(t *testing.T) {
	dir := startDirectory(t, nil)
	node := startNode(t, nodeOpts{plaintext: true})
	node.eng.SetDirectoryKeys(dir.s.PublicKey())
	p := registerPython(t, dir, node)

	t.Run("registry presence", func(t *testing.T) { checkRegistryPresence(t, p) })
	t.Run("discover", func(t *testing.T) { checkDiscover(t, p) })
	t.Run("dispatch ticket", func(t *testing.T) { checkTickets(t, p) })
	t.Run("consumer token", func(t *testing.T) { checkConsumerToken(t, p) })
}

// checkRegistryPresence: the provider SDKs' presence probe
// (src/iicp_client/recovery.py registry_node_presence) by 8-character
// prefix and full id, on the /api base and its /v1 twin: 2xx while
// registered, 404 for an unknown node, public fields only.
func checkRegistryPresence(t *testing.T, p *sdkProvider) {
	for _, base := range []string{p.dirAPI, p.dir.base} {
		for _, id := range []string{interop.RegistryPrefix(p.nodeID), p.nodeID} {
			st, b := p.dir.do(t, http.MethodGet, base+"/v1/registry/nodes/"+id, "", nil)
			if st < 200 || st > 299 {
				t.Fatalf("presence %s/%s: %d %s", base, id, st, b)
			}
			if contains(string(b), p.node.url, p.token, `"endpoint"`, "node_token") {
				t.Fatalf("registry view discloses private fields: %s", b)
			}
		}
		st, b := p.dir.do(t, http.MethodGet, base+"/v1/registry/nodes/0badc0de", "", nil)
		if st != http.StatusNotFound {
			t.Fatalf("unknown prefix: %d %s", st, b)
		}
		if nested, top := envelopeCode(t, b); nested != "not_found" || top != nested {
			t.Fatalf("unknown prefix codes %q/%q", nested, top)
		}
	}
}

// sdkNode is the Rust client's discover Node (src/types.rs): node_id,
// endpoint, score, available and region are required.
type sdkNode struct {
	NodeID      string          `json:"node_id"`
	Endpoint    string          `json:"endpoint"`
	Score       *float64        `json:"score"`
	Available   *bool           `json:"available"`
	Region      *string         `json:"region"`
	CXPublicKey json.RawMessage `json:"cx_public_key"`
}

func (n sdkNode) complete() bool {
	return n.NodeID != "" && n.Endpoint != "" && n.Score != nil && n.Available != nil && n.Region != nil
}

// checkDiscover: the Python client's query (limit, intent, region) and the
// Rust client's hand-built URL (unescaped intent, qos, limit last) both list
// the node with every field the SDKs require and the registered
// cx_public_key unchanged (CX-01).
func checkDiscover(t *testing.T, p *sdkProvider) {
	for _, q := range []string{
		"?limit=10&intent=" + wire.IntentChat + "&region=eu-central",
		"?intent=" + wire.IntentChat + "&qos=interactive&min_reputation=0&limit=10",
		"?limit=5&intent=" + wire.IntentChat + "&cip_capable=0",
	} {
		st, b := p.dir.do(t, http.MethodGet, p.dirAPI+"/v1/discover"+q, "", nil)
		var nl struct {
			Nodes []sdkNode `json:"nodes"`
			Count *uint32   `json:"count"`
		}
		if st != http.StatusOK || json.Unmarshal(b, &nl) != nil || nl.Count == nil || len(nl.Nodes) != 1 {
			t.Fatalf("discover %s: %d %s", q, st, b)
		}
		n := nl.Nodes[0]
		if !n.complete() || n.NodeID != p.nodeID || n.Endpoint != p.node.url || !*n.Available {
			t.Fatalf("discover %s: node %s", q, b)
		}
		if !sameJSON(n.CXPublicKey, p.cxKey) {
			t.Fatalf("CX-01 cx_public_key changed in discover: %s, registered %s", n.CXPublicKey, p.cxKey)
		}
		if strings.Contains(string(b), `"public_key":{`) {
			t.Fatalf("CX-01: discover overloads public_key with CX material: %s", b)
		}
	}
}

// checkTickets: the Rust client's ticketed discovery (src/client.rs
// ticketed_candidates) and the Python proxy's (proxy/clients/directory.py
// _ticketed_routes): 201 with a ticket the SDK verifier accepts (iss = the
// directory base as addressed, without /api), a route the SDK can
// deserialize, then 404 no_route_available once the node is excluded.
func checkTickets(t *testing.T, p *sdkProvider) {
	st, kb := p.dir.do(t, http.MethodGet, p.dirAPI+"/v1/directory-key", "", nil)
	var key struct {
		PublicKey string `json:"public_key"`
		Algorithm string `json:"algorithm"`
	}
	if st != http.StatusOK || json.Unmarshal(kb, &key) != nil || len(key.PublicKey) != 64 {
		t.Fatalf("directory-key: %d %s", st, kb)
	}
	bodies := map[string]map[string]any{
		"rust":   {"intent": wire.IntentChat, "limit": 10, "qos": "interactive", "exclude_node_id_prefixes": []string{}},
		"python": {"limit": 5, "intent": wire.IntentChat, "model": "meshnode-echo", "cip_capable": 0, "exclude_node_id_prefixes": []string{}},
	}
	// The issuer follows the host the caller used: 127.0.0.1 and localhost.
	for _, dirURL := range []string{p.dirAPI, withHost(t, p.dir.base, "localhost") + "/api/"} {
		for name, body := range bodies {
			base := strings.TrimRight(dirURL, "/")
			st, b := p.dir.do(t, http.MethodPost, base+"/v1/dispatch/ticket", "", body)
			var out struct {
				Ticket         string          `json:"ticket"`
				NodeID         string          `json:"node_id"`
				TicketIDPrefix string          `json:"ticket_id_prefix"`
				Route          json.RawMessage `json:"route"`
			}
			if st != http.StatusCreated || json.Unmarshal(b, &out) != nil {
				t.Fatalf("DIR-DISPATCH-01 %s via %s: %d %s", name, dirURL, st, b)
			}
			c, ok := sdkVerifyTicket(out.Ticket, key.PublicKey, interop.TicketIssuer(dirURL), out.NodeID, wire.IntentChat, time.Now().Unix())
			if !ok || out.NodeID != p.nodeID || !strings.HasPrefix(c.JTI, out.TicketIDPrefix) || out.TicketIDPrefix == "" {
				t.Fatalf("%s via %s: the SDK rejects the ticket (iss want %q): %s", name, dirURL, interop.TicketIssuer(dirURL), b)
			}
			var route sdkNode
			if json.Unmarshal(out.Route, &route) != nil || !route.complete() || route.Endpoint != p.node.url {
				t.Fatalf("%s: the SDK cannot build a Node from the route: %s", name, out.Route)
			}
			if !sameJSON(route.CXPublicKey, p.cxKey) {
				t.Fatalf("cx_public_key changed in the ticket route: %s", route.CXPublicKey)
			}
			// Second round: the SDK excludes the node it already holds.
			body2 := map[string]any{}
			for k, v := range body {
				body2[k] = v
			}
			body2["exclude_node_id_prefixes"] = []string{out.NodeID[:8]}
			st, b = p.dir.do(t, http.MethodPost, base+"/v1/dispatch/ticket", "", body2)
			if st != http.StatusNotFound {
				t.Fatalf("%s: exhausted routes: %d %s", name, st, b)
			}
			if nested, _ := envelopeCode(t, b); nested != string(wire.CodeNoRoute) {
				t.Fatalf("%s: exhausted routes code %q", name, nested)
			}
		}
	}
}

// checkConsumerToken: the Python and Rust consumer-token request
// (src/iicp_client/client.py _acquire_consumer_token, Rust
// src/consumer_token.rs): 201 {token, expires_at:int}; the token then
// authorizes a task on the target node via X-IICP-Consumer-Token.
func checkConsumerToken(t *testing.T, p *sdkProvider) {
	base := pythonConsumerTokenBase(p.dirAPI)
	st, b := p.dir.do(t, http.MethodPost, base+"/api/v1/consumer-token", p.token,
		map[string]any{"target_node_id": p.nodeID, "intent": wire.IntentChat})
	var ct struct {
		Token     string `json:"token"`
		ExpiresAt *int64 `json:"expires_at"`
	}
	if st != http.StatusCreated || json.Unmarshal(b, &ct) != nil || ct.Token == "" || ct.ExpiresAt == nil || *ct.ExpiresAt <= time.Now().Unix() {
		t.Fatalf("consumer-token: %d %s", st, b)
	}
	// Without the node token the route refuses (401) in the spec envelope.
	if st, b := p.dir.do(t, http.MethodPost, base+"/api/v1/consumer-token", "", map[string]any{"target_node_id": p.nodeID, "intent": wire.IntentChat}); st != http.StatusUnauthorized {
		t.Fatalf("consumer-token without bearer: %d %s", st, b)
	}
	// The consumer's task: encrypted to the advertised key, no auth member.
	taskID := "8b7f3c1e-1111-4222-8333-444455556601"
	pk := p.node.ring.PublicKey()
	raw, _ := b64.DecodeString(pk.Key)
	env, _ := sdkSeal(t, pk.Key, sdkKeyID(raw), taskID, wire.IntentChat, chatPayload("via token"), nil, nil)
	body := mustJSON(t, map[string]any{"task_id": taskID, "intent": wire.IntentChat,
		"constraints": map[string]any{"timeout_ms": 30000, "qos": "interactive"}, "iicp_conf": env})
	st, _, b = p.node.post(t, body, map[string]string{"X-IICP-Consumer-Token": ct.Token})
	if st != http.StatusOK || !strings.Contains(string(b), "via token") {
		t.Fatalf("task with consumer token: %d %s", st, b)
	}
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return string(mustJSONNoT(x)) == string(mustJSONNoT(y))
}

func mustJSONNoT(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestDIR_DISPATCH_01_IssuerFromPublicURL: behind a proxy the directory is
// configured with its public base URL; the ticket iss is that URL without
// /api, which is what an SDK configured with it expects.
func TestDIR_DISPATCH_01_IssuerFromPublicURL(t *testing.T) {
	const public = "https://directory.example.test/api/"
	dir := startDirectory(t, func(c *directory.Config) { c.PublicURL = public })
	node := startNode(t, nodeOpts{plaintext: true})
	p := registerPython(t, dir, node)
	_, kb := dir.do(t, http.MethodGet, p.dirAPI+"/v1/directory-key", "", nil)
	var key struct {
		PublicKey string `json:"public_key"`
	}
	_ = json.Unmarshal(kb, &key)
	st, b := dir.do(t, http.MethodPost, p.dirAPI+"/v1/dispatch/ticket", "", map[string]any{"intent": wire.IntentChat})
	var out struct {
		Ticket string `json:"ticket"`
	}
	if st != http.StatusCreated || json.Unmarshal(b, &out) != nil {
		t.Fatalf("ticket: %d %s", st, b)
	}
	if _, ok := sdkVerifyTicket(out.Ticket, key.PublicKey, interop.TicketIssuer(public), p.nodeID, wire.IntentChat, time.Now().Unix()); !ok {
		t.Fatalf("iss is not %q: %s", interop.TicketIssuer(public), b)
	}
}
