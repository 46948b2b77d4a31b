package route

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/meshnode/meshnode/internal/breaker"
	"github.com/meshnode/meshnode/internal/retry"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// Path names how a task reaches its node.
type Path string

// The paths a Router knows.
const (
	PathMesh  Path = "mesh"  // a libp2p task stream (/iicp/task/1.0.0)
	PathHTTP  Path = "http"  // POST /v1/task, sealed with IICP-CX
	PathLocal Path = "local" // this node's own engine (the §8 fallback)
	// PathGateway: a meshnode node that routes the task for a program
	// that runs no node (/meshnode/gateway/1.0.0, gateway.go).
	PathGateway Path = "gateway"
)

// Target is one candidate node and how to reach it. Finders fill what
// their path needs.
type Target struct {
	Path Path
	// NodeID is the node's IICP node_id ("" when unknown).
	NodeID string
	// PeerID is the libp2p peer ID (mesh), as text; Peer the peer table
	// entry it came from.
	PeerID string
	Peer   mesh.PeerInfo
	// Node is the discover entry (http): endpoint and IICP-CX key.
	Node wire.NodeSummary
	// Plaintext allows sending the CALL unencrypted when the node
	// advertises no IICP-CX key (http; iicp-confidentiality.md §6 opt-in).
	Plaintext bool
	// Echo marks a node that offers the intent only through meshnode's
	// echo backend (wire.EchoModel): tried only after every other target.
	Echo bool
	// Score is the finder's value for the target in [0, 1] (mesh: the
	// local selection value), 0 when the finder has none.
	Score float64
}

// fallback reports the §8 fallback target (PathLocal with no node_id), as
// opposed to this node tried first (WithLocal).
func (t Target) fallback() bool { return t.Path == PathLocal && t.NodeID == "" }

// key names the target's circuit breaker: one per path and node.
func (t Target) key() string {
	switch t.Path {
	case PathMesh:
		return "mesh/" + t.PeerID
	case PathHTTP:
		return "http/" + t.NodeID + "@" + t.Node.Endpoint
	}
	return string(t.Path) + "/" + t.NodeID
}

// Query is what finders look for.
type Query struct {
	Intent string
	Model  string
	QoS    string
	Region string
	// AllowPlaintext lets finders offer nodes without an IICP-CX key.
	AllowPlaintext bool
	// Remote keeps the call off this node (WithLocal and the fallback):
	// only other nodes.
	Remote bool
}

// Finder lists candidate targets for a query, best first. A Finder that
// knows nothing returns an empty list; an error means it could not look
// (its directory is unreachable, every node it found is keyless…), and the
// Router moves on to the next finder.
type Finder interface {
	Find(ctx context.Context, q Query) ([]Target, error)
}

// Sent says what happened on the wire for one attempt.
type Sent struct {
	// HTTPStatus is the node's HTTP status (http path; 0: no answer).
	HTTPStatus int
	// Encrypted reports that the payload went out sealed with IICP-CX.
	Encrypted bool
}

// Transport sends one attempt to one target. A nil error comes with the
// node's RESPONSE, successful or not. An error wrapping ErrNotSent means
// nothing reached the node (its key is unusable, its circuit is open
// inside the transport…); a *wire.Error that is not ErrNotSent means the
// call itself is invalid and no node will take it; any other error is the
// node failing (unreachable, protocol violation).
type Transport interface {
	Send(ctx context.Context, t Target, call *wire.Call, credential string) (*wire.Response, Sent, error)
}

// ErrNotSent marks a transport error after which nothing reached the
// target: the Router moves on at once, spends no attempt and leaves the
// target's breaker alone.
var ErrNotSent = errors.New("route: not sent")

// NotSent wraps err as ErrNotSent (errors.Is and errors.As see both).
func NotSent(err error) error { return fmt.Errorf("%w: %w", ErrNotSent, err) }

// Attempt describes one target tried.
type Attempt struct {
	Path     Path
	NodeID   string
	PeerID   string
	Endpoint string
	// Status is the HTTP status (http path, 0: no answer); Code the IICP
	// code of the answer or of the failure, if any.
	Status int
	Code   wire.Code
	// QoSClass is the saturated class a capacity_exceeded answer named.
	QoSClass string
	// Encrypted reports that the payload went out sealed with IICP-CX.
	Encrypted bool
	// NotSent: nothing reached the node; no attempt was spent.
	NotSent bool
}

// Result reports how a call went: the answer, the path and node that gave
// it, and every target tried.
type Result struct {
	Response *wire.Response
	Path     Path
	NodeID   string
	PeerID   string
	Endpoint string
	// Encrypted reports that Response answers a CALL sealed with IICP-CX.
	Encrypted bool
	Tried     []Attempt
	// Attempts counts the attempts spent (entries of Tried that reached a
	// node).
	Attempts int
	// Resumes counts the resumptions of a streamed answer whose stream
	// broke after output (stream.go); 0 for every other call.
	Resumes int
}

// Router runs tasks over every path it has finders for: one attempt loop
// (iicp-semantics.md §6: at most 3 attempts, backoff with jitter between
// transient failures, capacity_exceeded switching at once), one circuit
// breaker per target (§7.1), one classifier (wire.RetryElsewhere) and one
// credential per target. A Router is safe for concurrent use; its breakers
// outlive calls.
type Router struct {
	finders  []Finder
	s        settings
	breakers *breaker.Set[string]
	closers  []func() error // what ForAgent opened (Close)
}

// Close releases what the Router's constructor opened (ForAgent with a
// bootstrap peer: its libp2p host). A Router from New owns nothing: Close
// is a no-op. Calls in flight fail once Close returns.
func (r *Router) Close() error {
	var errs []error
	for _, c := range r.closers {
		errs = append(errs, c())
	}
	r.closers = nil
	return errors.Join(errs...)
}

// New builds a Router over finders, asked in order (the first finder's
// targets are tried first; a later finder is asked only when the earlier
// ones did not produce a final answer).
func New(finders []Finder, opts ...Option) (*Router, error) {
	s := defaults()
	for _, o := range opts {
		if err := o(&s); err != nil {
			return nil, err
		}
	}
	for i, f := range finders {
		if f == nil {
			return nil, fmt.Errorf("route: finder %d is nil", i)
		}
	}
	return &Router{finders: finders, s: s, breakers: breaker.New[string](s.threshold, s.openFor)}, nil
}

// Breaker reports t's circuit state ("closed", "open", "half-open").
func (r *Router) Breaker(t Target) string { return r.breakers.State(t.key(), r.s.now()) }

// newUUID returns a random UUID v4 (call_id of each attempt).
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return wire.UUIDv4(b)
}

// pause is the §6.1 backoff before the n-th attempt (n ≥ 2).
func (r *Router) pause(ctx context.Context, n int) error {
	return retry.Sleep(ctx, retry.Backoff(r.s.retryBase, n-1))
}
