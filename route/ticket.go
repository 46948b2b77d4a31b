package route

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/wire"
	"github.com/meshnode/meshnode/wire/token"
)

// DefaultTickets is how many routes a TicketFinder asks for per call: one
// per attempt the Router may spend.
const DefaultTickets = DefaultAttempts

// ticketPrefixLen is the node_id prefix sent back as excluded (the length
// the deployed SDKs use, docs/interop.md S5).
const ticketPrefixLen = 8

// TicketFinder finds routes the way iicp-dir.md §3.4 asks new consumers
// to: POST /v1/dispatch/ticket, one concrete route per ticket, the nodes
// already offered excluded from the next request, until Max routes or the
// directory answers no_route_available. Every ticket is verified before its
// route is used: signed by the directory's key (GET /v1/directory-key),
// issued by this directory, for the node and intent it names, not expired.
// A directory that predates tickets (404 other than no_route_available,
// 405, 501, 503 not_configured on the first request) is asked with
// discover instead, as the deployed SDKs do. Keyless nodes are left out
// unless the query allows plaintext (IICP-E064 when that leaves none).
//
// Tickets need no credential: this is the finder for programs that run no
// node. A TicketFinder is safe for concurrent use; use it by pointer.
type TicketFinder struct {
	C *dirclient.Client
	// Max routes per Find; 0 uses DefaultTickets.
	Max int
	// Now replaces time.Now (tests).
	Now func() time.Time

	mu   sync.Mutex
	keys []ed25519.PublicKey
}

// Find implements Finder.
func (f *TicketFinder) Find(ctx context.Context, q Query) ([]Target, error) {
	limit := f.Max
	if limit <= 0 {
		limit = DefaultTickets
	}
	var out []Target
	var exclude []string
	keyless := 0
	for i := 0; i < limit; i++ {
		t, err := f.C.DispatchTicket(ctx, dirclient.TicketQuery{Intent: q.Intent, QoS: q.QoS, Region: q.Region, Exclude: exclude})
		switch {
		case err == nil:
		case noRoute(err):
			i = limit // nothing eligible left
			continue
		case i == 0 && predatesTickets(err):
			return DirectoryFinder{C: f.C}.Find(ctx, q)
		case len(out) > 0:
			return out, nil // keep the routes already found
		default:
			return nil, err
		}
		if err := f.verify(ctx, t, q.Intent); err != nil {
			return nil, err
		}
		exclude = append(exclude, prefix(t.NodeID, ticketPrefixLen))
		n := t.Route
		if n.Endpoint == "" || !n.Available {
			continue
		}
		if n.CXPublicKey == nil && !q.AllowPlaintext {
			keyless++
			continue
		}
		out = append(out, Target{Path: PathHTTP, NodeID: t.NodeID, Node: n, Plaintext: q.AllowPlaintext})
	}
	if len(out) == 0 && keyless > 0 {
		return nil, wire.Errorf(wire.CodeE064, "%d node(s) serve %s but none advertises an IICP-CX key; refusing to send the payload in plaintext", keyless, q.Intent)
	}
	return out, nil
}

// verify checks t against the directory's key, fetched once.
func (f *TicketFinder) verify(ctx context.Context, t *dirclient.Ticket, intent string) error {
	keys, err := f.directoryKeys(ctx)
	if err != nil {
		return err
	}
	if t.Route.NodeID != "" && t.Route.NodeID != t.NodeID {
		return errors.New("directory dispatch-ticket: the route names another node than the ticket")
	}
	now := time.Now()
	if f.Now != nil {
		now = f.Now()
	}
	// A client clock slightly behind the directory's must not refuse a
	// fresh ticket: judge it no earlier than the (unsigned) issue time.
	if iat := time.Unix(t.IssuedAt, 0); now.Before(iat) {
		now = iat
	}
	if _, err := token.VerifyRouteTicket(keys, t.Ticket, issuerOf(f.C.URL()), t.NodeID, intent, now); err != nil {
		return fmt.Errorf("directory dispatch-ticket %s: refusing the route: %w", t.IDPrefix, err)
	}
	return nil
}

func (f *TicketFinder) directoryKeys(ctx context.Context) ([]ed25519.PublicKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys != nil {
		return f.keys, nil
	}
	h, err := f.C.DirectoryKey(ctx)
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(h)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return nil, errors.New("directory-key: not a hex Ed25519 public key")
	}
	f.keys = []ed25519.PublicKey{k}
	return f.keys, nil
}

// issuerOf is the iss a directory at base signs: the URL without a
// trailing "/" and without one "/api" suffix (docs/interop.md S3).
func issuerOf(base string) string {
	return strings.TrimSuffix(strings.TrimSuffix(base, "/"), "/api")
}

// noRoute: the directory has no eligible route left.
func noRoute(err error) bool {
	var ce *dirclient.Error
	return errors.As(err, &ce) && ce.Code == wire.CodeNoRoute
}

// predatesTickets: the directory does not serve dispatch tickets.
func predatesTickets(err error) bool {
	var ce *dirclient.Error
	if !errors.As(err, &ce) {
		return false
	}
	switch ce.Status {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	case http.StatusServiceUnavailable:
		return ce.Code == "not_configured"
	}
	return false
}

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
