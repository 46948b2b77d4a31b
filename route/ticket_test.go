package route

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/wire"
	"github.com/meshnode/meshnode/wire/token"
)

// ticketDir is an HTTP directory serving dispatch tickets signed with a
// real Ed25519 key (wire/token), one route per node not excluded.
type ticketDir struct {
	srv      *httptest.Server
	key      ed25519.PrivateKey
	nodes    []wire.NodeSummary
	issuer   string // "" signs as the server's own URL
	signWith ed25519.PrivateKey
	legacy   bool // answer tickets 404 not_found (a directory without tickets)
	// routeNodeID, when set, replaces the route's node_id (a directory
	// pairing a ticket with another node's route).
	routeNodeID string
	mu          sync.Mutex
	excluded    [][]string
}

func newTicketDir(t *testing.T, nodes ...wire.NodeSummary) *ticketDir {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	d := &ticketDir{key: key, signWith: key, nodes: nodes}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *ticketDir) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/v1/directory-key":
		writeJSON(w, 200, map[string]string{"public_key": hex.EncodeToString(d.key.Public().(ed25519.PublicKey)), "algorithm": "ed25519"})
	case "/v1/discover":
		writeJSON(w, 200, wire.NodeList{Nodes: d.nodes, Count: len(d.nodes)})
	case "/v1/dispatch/ticket":
		if d.legacy {
			writeJSON(w, 404, wire.NewError(wire.CodeNotFound, "no such route").Envelope())
			return
		}
		var q dirclient.TicketQuery
		_ = json.NewDecoder(r.Body).Decode(&q)
		d.mu.Lock()
		d.excluded = append(d.excluded, q.Exclude)
		d.mu.Unlock()
		for _, n := range d.nodes {
			if excludedBy(n.NodeID, q.Exclude) {
				continue
			}
			iss := d.issuer
			if iss == "" {
				iss = d.srv.URL
			}
			now := time.Now()
			route := n
			if d.routeNodeID != "" {
				route.NodeID = d.routeNodeID
			}
			tok, _ := token.SignRouteTicket(d.signWith, token.RouteTicket{V: 1, Typ: token.TicketType, Iss: iss,
				Aud: token.TicketAudience, JTI: "0123456789abcdef01234567", NodeID: n.NodeID, Intent: q.Intent,
				IAT: now.Unix(), Exp: now.Add(2 * time.Minute).Unix()})
			writeJSON(w, 201, map[string]any{"ticket": tok, "ticket_id_prefix": "0123456789ab", "issued_at": now.Unix(),
				"expires_at": now.Add(2 * time.Minute).Unix(), "issuer": iss, "intent": q.Intent, "node_id": n.NodeID, "route": route})
			return
		}
		writeJSON(w, 404, wire.NewError(wire.CodeNoRoute, "no eligible route").Envelope())
	default:
		http.NotFound(w, r)
	}
}

func excludedBy(id string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

func (d *ticketDir) finder(t *testing.T) *TicketFinder {
	c, err := dirclient.New(d.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &TicketFinder{C: c}
}

func keyed(n wire.NodeSummary) wire.NodeSummary {
	n.CXPublicKey = &wire.CXPublicKey{Algorithm: "X25519", Key: "AAAA"}
	return n
}

// TestTicketFinder_RoutesVerifiedAndExcluded (DIR-DISPATCH-01/04): one
// route per ticket, each verified against the directory's key, the nodes
// already offered excluded from the next request, until no_route_available.
func TestTicketFinder_RoutesVerifiedAndExcluded(t *testing.T) {
	a := keyed(wire.NodeSummary{NodeID: "aaaaaaaa-0000-4000-8000-000000000001", Endpoint: "http://127.0.0.1:1", Available: true})
	b := keyed(wire.NodeSummary{NodeID: "bbbbbbbb-0000-4000-8000-000000000002", Endpoint: "http://127.0.0.1:2", Available: true})
	d := newTicketDir(t, a, b)
	got, err := d.finder(t).Find(context.Background(), Query{Intent: wire.IntentChat})
	if err != nil || len(got) != 2 || got[0].NodeID != a.NodeID || got[1].NodeID != b.NodeID {
		t.Fatalf("targets %+v, err %v", got, err)
	}
	if len(d.excluded) != 3 || len(d.excluded[0]) != 0 || d.excluded[2][0] != "aaaaaaaa" || d.excluded[2][1] != "bbbbbbbb" {
		t.Fatalf("exclusions sent: %v", d.excluded)
	}
}

// TestTicketFinder_RefusesUnverifiedRoutes: a route whose ticket is signed
// by another key, or names another issuer, is never used.
func TestTicketFinder_RefusesUnverifiedRoutes(t *testing.T) {
	n := keyed(wire.NodeSummary{NodeID: "aaaaaaaa-0000-4000-8000-000000000001", Endpoint: "http://127.0.0.1:1", Available: true})
	forged := newTicketDir(t, n)
	_, forged.signWith, _ = ed25519.GenerateKey(rand.Reader)
	if got, err := forged.finder(t).Find(context.Background(), Query{Intent: wire.IntentChat}); err == nil || len(got) != 0 {
		t.Fatalf("forged ticket accepted: %v %v", got, err)
	}
	swapped := newTicketDir(t, n)
	swapped.routeNodeID = "bbbbbbbb-0000-4000-8000-000000000002" // a route for another node than the ticket's
	if got, err := swapped.finder(t).Find(context.Background(), Query{Intent: wire.IntentChat}); err == nil || len(got) != 0 {
		t.Fatalf("route for another node accepted: %v %v", got, err)
	}
	other := newTicketDir(t, n)
	other.issuer = "https://evil.example"
	if got, err := other.finder(t).Find(context.Background(), Query{Intent: wire.IntentChat}); err == nil || len(got) != 0 {
		t.Fatalf("foreign issuer accepted: %v %v", got, err)
	}
}

// TestTicketFinder_LegacyDirectoryAndKeyless: a directory without tickets
// is asked with discover; keyless routes are refused (IICP-E064) unless
// plaintext is allowed.
func TestTicketFinder_LegacyDirectoryAndKeyless(t *testing.T) {
	n := wire.NodeSummary{NodeID: "aaaaaaaa-0000-4000-8000-000000000001", Endpoint: "http://127.0.0.1:1", Available: true}
	d := newTicketDir(t, n)
	_, err := d.finder(t).Find(context.Background(), Query{Intent: wire.IntentChat})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeE064 {
		t.Fatalf("keyless route: %v", err)
	}
	if got, err := d.finder(t).Find(context.Background(), Query{Intent: wire.IntentChat, AllowPlaintext: true}); err != nil || len(got) != 1 || !got[0].Plaintext {
		t.Fatalf("plaintext allowed: %+v %v", got, err)
	}
	d.legacy = true
	got, err := d.finder(t).Find(context.Background(), Query{Intent: wire.IntentChat, AllowPlaintext: true})
	if err != nil || len(got) != 1 || got[0].NodeID != n.NodeID {
		t.Fatalf("legacy directory: %+v %v", got, err)
	}
}

// TestNewTask builds valid CALLs and refuses invalid ones.
func TestNewTask(t *testing.T) {
	c, err := NewTask(wire.IntentChat, map[string]any{"messages": []map[string]string{{"role": "user", "content": "hi"}}}, 0)
	if err != nil || c.Constraints.TimeoutMs != DefaultTaskTimeout.Milliseconds() || c.TaskID == "" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := NewTask("not-an-intent", map[string]any{}, 0); err == nil {
		t.Fatal("invalid intent accepted")
	}
	if _, err := NewTask(wire.IntentChat, func() {}, 0); err == nil {
		t.Fatal("unencodable payload accepted")
	}
}
