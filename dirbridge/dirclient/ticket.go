package dirclient

import (
	"context"
	"net/http"

	"github.com/meshnode/meshnode/wire"
)

// TicketQuery asks a directory for one route (POST /v1/dispatch/ticket,
// iicp-dir.md §3.4). It is control-plane only: it never carries a payload.
type TicketQuery struct {
	Intent string `json:"intent"`
	QoS    string `json:"qos,omitempty"`
	Region string `json:"region,omitempty"`
	// Exclude are node_id prefixes already tried (at most ten).
	Exclude []string `json:"exclude_node_id_prefixes,omitempty"`
}

// Ticket is a directory's dispatch-ticket answer: one concrete route and a
// signed, short-lived ticket naming its node and intent. The ticket
// authorizes route disclosure only, not a task (§3.4); it is bearer route
// material (LOG-FORBIDDEN: log IDPrefix instead).
type Ticket struct {
	Ticket    string           `json:"ticket"`
	IDPrefix  string           `json:"ticket_id_prefix"`
	IssuedAt  int64            `json:"issued_at"`
	ExpiresAt int64            `json:"expires_at"`
	Issuer    string           `json:"issuer"`
	Intent    string           `json:"intent"`
	NodeID    string           `json:"node_id"`
	Route     wire.NodeSummary `json:"route"`
}

// DispatchTicket asks for a route ticket. No credential is needed: this is
// how a consumer that runs no node finds a route. A directory with nothing
// eligible left answers 404 no_route_available (an *Error with that Code).
func (c *Client) DispatchTicket(ctx context.Context, q TicketQuery) (*Ticket, error) {
	var t Ticket
	if err := c.do(ctx, "dispatch-ticket", http.MethodPost, "/v1/dispatch/ticket", "", &q, &t, maxBody, http.StatusCreated, http.StatusOK); err != nil {
		return nil, err
	}
	if t.Ticket == "" || t.NodeID == "" {
		return nil, &Error{Op: "dispatch-ticket", Status: http.StatusCreated, Message: "no ticket or node in reply"}
	}
	return &t, nil
}
