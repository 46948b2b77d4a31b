package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

const (
	// defaultCallTimeout is the task budget when the caller names none.
	defaultCallTimeout = 60 * time.Second
	// callOverhead is added to the task budget for discovery and retries.
	callOverhead = 10 * time.Second
)

// setupAdmin binds the loopback admin endpoint and writes its 0600 token.
func (d *daemon) setupAdmin() error {
	tok := newSecret()
	r, err := d.newRouter()
	if err != nil {
		return fmt.Errorf("building the task router: %w", err)
	}
	srv, err := admin.Listen(d.cfg.Admin.Listen, tok, adminBackend{d: d, router: r}, d.o.Logs.Named("admin"))
	if err != nil {
		return bindError("admin endpoint", d.cfg.Admin.Listen, "set admin.listen (127.0.0.1:0 picks a free port)", err)
	}
	if err := paths.WriteFileAtomic(d.o.Paths.AdminToken, []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing admin token: %w", err)
	}
	d.admin = srv
	return nil
}

// adminBackend implements admin.Backend on the daemon.
type adminBackend struct {
	d      *daemon
	router *route.Router
}

func (a adminBackend) NodeToken() string { return a.d.nodeToken() }

// Reregister refreshes every directory registration now, so a delegation
// `meshnode operator delegate` just wrote is sent without a restart; the
// mesh presents it at once.
func (a adminBackend) Reregister() int {
	a.d.applyOperator()
	for _, s := range a.d.sessions {
		s.Refresh()
	}
	return len(a.d.sessions)
}

func (a adminBackend) Status(ctx context.Context) admin.Status {
	d := a.d
	st := admin.Status{
		NodeID:        d.id.NodeID(),
		Version:       d.o.Version,
		StartedAt:     d.started,
		UptimeS:       int64(time.Since(d.started).Seconds()),
		HTTPURL:       d.bridge.URL(),
		Endpoint:      d.endpoint,
		DirectoryMode: d.dirMode,
		Directories:   []dirclient.Status{},
		Health:        d.engine.Health(ctx),
		Served:        d.engine.Stats().Served,
		Operator:      d.operatorStatus(),
	}
	if pid, err := d.id.PeerID(); err == nil {
		st.PeerID = pid.String()
	}
	for _, rs := range d.reads {
		st.DirectoryReads = append(st.DirectoryReads, admin.DirectoryReads{Seed: rs.URL(), Directories: rs.Status()})
	}
	for _, s := range d.sessions {
		ds := s.Status()
		st.Directories = append(st.Directories, ds)
		if st.ObservedSourceIP == "" && ds.ObservedSourceIP != "" {
			st.ObservedSourceIP = ds.ObservedSourceIP
		}
	}
	cs := d.cxProvider.Stats()
	k := d.cxRing.PublicKey()
	st.CX = admin.CXStatus{KeyID: k.KeyID, NotAfter: k.NotAfter, Opened: cs.Opened, Failures: cs.Failures}
	if d.mesh != nil {
		st.Mesh = admin.MeshStatus{Enabled: true, PeerID: st.PeerID, Addrs: d.p2pAddrs(),
			Peers: len(d.mesh.Peers()), Provided: d.mesh.Provided(),
			Connections: len(d.host.Network().Conns()), Events: d.mesh.Stats()}
		d.mu.Lock()
		if d.member.ExpiresAt > 0 {
			exp := time.Unix(d.member.ExpiresAt, 0).UTC()
			st.Mesh.MembershipExpiresAt = &exp
		}
		d.mu.Unlock()
	}
	return st
}

func (a adminBackend) Peers(context.Context) []admin.Peer {
	if a.d.mesh == nil {
		return nil
	}
	var out []admin.Peer
	for _, p := range a.d.mesh.Peers() {
		ap := admin.Peer{PeerID: p.PeerID.String(), NodeID: p.NodeID, Region: p.Region, Intents: []string{},
			Load: p.Load, ActiveJobs: p.ActiveJobs, MaxConcurrent: p.MaxConcurrent, Available: p.Available,
			Addrs: p.Addrs, RTTMs: float64(p.RTT.Microseconds()) / 1000, LastSeen: p.LastSeen,
			FromDHT: p.FromDHT, Breaker: p.Breaker, SameOperator: a.d.mesh.SameOperator(p)}
		if raw, err := base64.StdEncoding.DecodeString(p.Operator); err == nil && len(raw) == ed25519.PublicKeySize {
			ap.Operator = wire.OperatorFingerprint(raw)
		}
		for _, c := range a.d.mesh.Host().Network().ConnsToPeer(p.PeerID) {
			ap.Conns = append(ap.Conns, c.RemoteMultiaddr().String())
		}
		for _, c := range p.Caps {
			ap.Intents = append(ap.Intents, c.Intent)
			for _, m := range c.Models {
				if !slices.Contains(ap.Models, m) {
					ap.Models = append(ap.Models, m)
				}
			}
		}
		out = append(out, ap)
	}
	return out
}

// Call runs a task for `meshnode call` through the daemon's router: mesh
// peers first (direct QUIC streams to peers that advertise the intent),
// then each directory's discover and HTTP POST /v1/task, and this node's
// own engine when no directory exists. Remote nodes authorize the call
// through a consumer token the directory issues to this (registered) node
// for each target (iicp-dir.md §3.12); the payload never reaches the
// directory.
func (a adminBackend) Call(ctx context.Context, req admin.CallRequest) (*admin.CallResult, *wire.Error) {
	return a.call(ctx, req, nil)
}

// CallStream is Call with the output streamed to chunk as the serving
// node generates it (route.Router.CallStream).
func (a adminBackend) CallStream(ctx context.Context, req admin.CallRequest, chunk func(json.RawMessage) error) (*admin.CallResult, *wire.Error) {
	return a.call(ctx, req, chunk)
}

func (a adminBackend) call(ctx context.Context, req admin.CallRequest, chunks route.Chunks) (*admin.CallResult, *wire.Error) {
	call, werr := a.d.newCall(req)
	if werr != nil {
		return nil, werr
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(call.Constraints.TimeoutMs)*time.Millisecond+callOverhead)
	defer cancel()
	var res *route.Result
	var err error
	if chunks != nil {
		res, err = a.router.CallStream(ctx, call, route.Query{AllowPlaintext: req.AllowPlaintext, Remote: req.Remote}, chunks)
	} else {
		res, err = a.router.Call(ctx, call, route.Query{AllowPlaintext: req.AllowPlaintext, Remote: req.Remote})
	}
	if errors.Is(err, route.ErrStreamBroken) {
		return nil, wire.NewError(wire.CodeBackendError, "the serving node's answer stream broke; the output printed is incomplete")
	}
	if res != nil && res.Path != "" {
		out := admin.FromRoute(res)
		if res.Path == route.PathLocal {
			out.NodeID = a.d.id.NodeID()
		}
		return out, nil // a final answer, successful or not: the CLI prints it
	}
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return nil, a.d.explainUnavailable(call.Intent, we)
	case ctx.Err() != nil:
		return nil, wire.NewError(wire.CodeTaskTimeout, "no node answered within the task timeout")
	}
	return nil, wire.Errorf(wire.CodeUnavailable, "no directory reachable (%d configured) and no mesh peer serves %s", len(a.d.clients), call.Intent)
}

// newRouter builds the daemon's router: the mesh finder first, then one
// directory finder per directory; the local engine as the fallback when no
// directory exists (directory.disabled).
func (d *daemon) newRouter() (*route.Router, error) {
	var finders []route.Finder
	opts := []route.Option{route.WithCredential(d.credential), route.WithLogger(d.log),
		route.WithTransport(route.PathHTTP, route.HTTPTransport{HTTP: d.taskClient})}
	opts = append(opts, d.observerOption()...)
	if d.mesh != nil {
		finders = append(finders, route.MeshFinder{M: d.mesh})
		opts = append(opts, route.WithTransport(route.PathMesh, route.MeshTransport{M: d.mesh}),
			route.WithLocal(localTransport{d}, d.localValue))
	}
	for _, rs := range d.reads {
		finders = append(finders, route.DirectoryFinder{C: rs})
	}
	if len(d.clients) == 0 {
		opts = append(opts, route.WithFallback(localTransport{d}))
	}
	return route.New(finders, opts...)
}

// errNoCredential: no directory issues this node a token for a mesh peer,
// which would refuse a tokenless call.
var errNoCredential = errors.New("no consumer token for the target")

// errNotOurOperator: a node without any directory sends its tasks only to
// peers its own operator delegated; the router reports it when no other
// target was tried.
var errNotOurOperator = wire.NewError(wire.CodeUnauthorized,
	"no directory vouches for this node and the mesh peers serving the intent belong to another operator (or prove none): "+
		"delegate the nodes with one operator key (meshnode operator delegate) or configure a directory")

// credential is the router's per-target credential. On the mesh, a node
// holding a membership credential needs none: the mesh sends the
// membership credential on every stream and the peer verifies it offline
// (even an expired one is sent, so the peer's refusal names the expiry).
// Neither does a peer whose advert proved this node's own operator: the
// mesh sends the operator delegation. Otherwise a reusable consumer token
// per target, cached until shortly before it expires, is fetched from a
// directory; a peer without any is skipped, so a node with no directory
// never sends a task to a LAN stranger. An HTTP node gets a single-use
// consumer token per attempt (the directory is on that path anyway) or
// the CALL without one.
func (d *daemon) credential(ctx context.Context, t route.Target, intent string) (string, error) {
	if t.Path == route.PathMesh {
		if d.mesh.SameOperator(t.Peer) || d.hasMembership() {
			return "", nil
		}
		if len(d.clients) == 0 {
			return "", errNotOurOperator
		}
		tok := d.tokenCache.get(t.NodeID, intent, time.Now(), func() (string, time.Time) {
			return d.consumerToken(ctx, t.NodeID, intent, false)
		})
		if tok == "" {
			return "", errNoCredential
		}
		return tok, nil
	}
	tok, _ := d.consumerToken(ctx, t.NodeID, intent, true)
	return tok, nil
}

// explainUnavailable adds the likely reason to "no node serves the intent"
// when this node serves it but is unavailable because its backend does
// not answer: directories do not list unavailable nodes.
func (d *daemon) explainUnavailable(intent string, werr *wire.Error) *wire.Error {
	if werr == nil || werr.Code != wire.CodeE033 || d.backendUp.Load() {
		return werr
	}
	for _, c := range d.be.router.Capabilities() {
		if c.Intent == intent {
			return wire.NewError(werr.Code, werr.Message+"; this node serves it but is unavailable: its backend "+
				d.be.be.Name()+" does not answer (meshnode status)")
		}
	}
	return werr
}

// newCall turns an admin request into a validated CALL.
func (d *daemon) newCall(req admin.CallRequest) (*wire.Call, *wire.Error) {
	if req.TimeoutMs == 0 {
		req.TimeoutMs = defaultCallTimeout.Milliseconds()
	}
	call := &wire.Call{
		TaskID:      dirclient.NewUUID(),
		Intent:      req.Intent,
		Payload:     req.Payload,
		Model:       req.Model,
		Constraints: wire.Constraints{TimeoutMs: req.TimeoutMs, QoS: req.QoS},
		Trace:       &wire.Trace{OriginNode: d.id.NodeID()},
	}
	if !json.Valid(call.Payload) {
		return nil, wire.NewError(wire.CodeValidationError, "payload must be a JSON object").WithField("payload")
	}
	if werr := wire.ValidateCall(call); werr != nil {
		return nil, werr
	}
	return call, nil
}

// consumerToken asks a directory this node is registered with for a token
// to call target; "" when none can issue one.
func (d *daemon) consumerToken(ctx context.Context, target, intent string, singleUse bool) (string, time.Time) {
	for _, c := range d.clients {
		own := d.tokenFor(c.URL())
		if own == "" {
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, d.cfg.Directory.RequestTimeout.D())
		tok, exp, err := c.ConsumerTokenFor(tctx, own, target, intent, singleUse)
		cancel()
		if err == nil {
			return tok, exp
		}
		d.log.Debug("consumer token refused", "directory", c.URL(), "error", err)
	}
	return "", time.Time{}
}

// localValue is this node's selection value for serving call itself
// (route.WithLocal): the mesh's formula with the engine's load and no
// network; not offered when the node serves the intent only with echo, or
// holds no token its engine accepts yet.
func (d *daemon) localValue(call *wire.Call) (float64, bool) {
	if d.nodeToken() == "" {
		return 0, false // the engine would refuse its own caller: not registered yet
	}
	if !d.backendUp.Load() {
		return 0, false // a backend that does not answer: never "best"
	}
	s := d.engine.Stats()
	return d.mesh.SelfValue(call, s.Load, s.ActiveJobs, s.MaxConcurrent)
}

// localTransport serves the task on this node's engine: when that is the
// best choice (route.WithLocal), and as the fallback when no directory
// exists and no mesh peer answered. It authorises with the token the
// engine accepts (operator token, or the primary directory's node token).
type localTransport struct{ d *daemon }

func (l localTransport) Send(ctx context.Context, _ route.Target, call *wire.Call, _ string) (*wire.Response, route.Sent, error) {
	l.authorize(call)
	return l.d.engine.Execute(ctx, call, localCaller), route.Sent{}, nil
}

// SendStream implements route.StreamTransport on this node's engine.
func (l localTransport) SendStream(ctx context.Context, _ route.Target, call *wire.Call, _ string, ev mesh.EventFunc) (*wire.Response, route.Sent, error) {
	l.authorize(call)
	return l.d.engine.ExecuteStream(ctx, call, localCaller, ev), route.Sent{}, nil
}

var localCaller = wire.Caller{Transport: "local", RemoteIP: "127.0.0.1"}

// authorize gives a local CALL the token this node's engine accepts (the
// operator token, or the primary directory's node token).
func (l localTransport) authorize(call *wire.Call) {
	if tok := l.d.nodeToken(); tok != "" {
		call.Auth = &wire.Auth{NodeToken: tok}
	}
}
