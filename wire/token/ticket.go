package token

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// Route ticket constants (iicp-dir.md §3.4).
const (
	TicketType     = "dispatch-route-ticket"
	TicketAudience = "iicp.directory.dispatch"
	// TicketGrace is 0: the fixture's "expired" vector is refused at exp.
	TicketGrace = 0
)

// RouteTicket is the v1 dispatch route ticket claim set. Field order is the
// fixture's order, so our encoding is byte-identical to the reference.
type RouteTicket struct {
	V      int    `json:"v"`
	Typ    string `json:"typ"`
	Iss    string `json:"iss"`
	Aud    string `json:"aud"`
	JTI    string `json:"jti"`
	NodeID string `json:"node_id"`
	Intent string `json:"intent"`
	IAT    int64  `json:"iat"`
	Exp    int64  `json:"exp"`
}

// SignRouteTicket mints a route ticket (the directory's side).
func SignRouteTicket(key ed25519.PrivateKey, c RouteTicket) (string, error) {
	return Sign(key, DomainRouteTicket, c)
}

// VerifyRouteTicket checks a route ticket's signature, type, audience,
// issuer, node, intent and Live at now (the fixture's validation vectors).
func VerifyRouteTicket(keys []ed25519.PublicKey, tok, issuer, nodeID, intent string, now time.Time) (*RouteTicket, error) {
	var c RouteTicket
	if err := Open(keys, DomainRouteTicket, tok, &c); err != nil {
		return nil, err
	}
	switch {
	case c.V != 1 || c.Typ != TicketType:
		return nil, fmt.Errorf("checking version/type: %w", ErrVersion)
	case c.Aud != TicketAudience:
		return nil, fmt.Errorf("checking audience: %w", ErrClaims)
	case c.Iss != issuer:
		return nil, fmt.Errorf("checking issuer: %w", ErrClaims)
	case c.NodeID != nodeID:
		return nil, fmt.Errorf("checking node: %w", ErrClaims)
	case c.Intent != intent:
		return nil, fmt.Errorf("checking intent: %w", ErrClaims)
	case c.JTI == "":
		return nil, ErrMissingClaim
	}
	if err := Live(now, c.IAT, c.Exp, TicketGrace); err != nil {
		return nil, err
	}
	return &c, nil
}
