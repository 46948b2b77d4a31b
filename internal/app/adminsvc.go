package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/meshnode/meshnode/dirbridge/client"
	"github.com/meshnode/meshnode/internal/admin"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

const (
	// defaultCallTimeout is the task budget when the caller names none.
	defaultCallTimeout = 60 * time.Second
	// callOverhead is added to the task budget for discovery and retries.
	callOverhead = 10 * time.Second
	// meshCallPeers bounds the mesh peers tried for one admin call
	// (iicp-semantics.md §6.1: 3 attempts).
	meshCallPeers = 3
)

// setupAdmin binds the loopback admin endpoint and writes its 0600 token.
func (d *daemon) setupAdmin() error {
	tok := newSecret()
	srv, err := admin.Listen(d.cfg.Admin.Listen, tok, adminBackend{d}, d.o.Logs.Named("admin"))
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
type adminBackend struct{ d *daemon }

func (a adminBackend) NodeToken() string { return a.d.nodeToken() }

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
		Directories:   []client.Status{},
		Health:        d.engine.Health(ctx),
		Served:        d.engine.Stats().Served,
	}
	if pid, err := d.id.PeerID(); err == nil {
		st.PeerID = pid.String()
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
			FromDHT: p.FromDHT, Breaker: p.Breaker}
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

// Call runs a task for `meshnode call`: the mesh first (direct QUIC streams
// to peers that advertise the intent), then directory discover and HTTP
// POST /v1/task. Remote nodes authorize the call through a consumer token
// the directory issues to this (registered) node for each target
// (iicp-dir.md §3.12); the payload never reaches the directory.
func (a adminBackend) Call(ctx context.Context, req admin.CallRequest) (*admin.CallResult, *wire.Error) {
	call, werr := a.d.newCall(req)
	if werr != nil {
		return nil, werr
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(call.Constraints.TimeoutMs)*time.Millisecond+callOverhead)
	defer cancel()
	if a.d.mesh != nil {
		if res := a.d.callMesh(ctx, call); res != nil {
			return res, nil
		}
	}
	res, werr := a.d.callHTTP(ctx, call, req.AllowPlaintext)
	return res, a.d.explainUnavailable(call.Intent, werr)
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
		TaskID:      client.NewUUID(),
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

// callMesh tries up to meshCallPeers peers advertising the intent, least
// loaded and closest first. It returns nil when no peer produced a final
// answer, so the caller falls back to HTTP.
func (d *daemon) callMesh(ctx context.Context, call *wire.Call) *admin.CallResult {
	var cands []mesh.PeerInfo
	for _, p := range d.mesh.Peers() {
		if p.Available && p.Serves(call.Intent, call.Model) && p.Breaker != "open" && p.NodeID != "" {
			cands = append(cands, p)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].Load != cands[j].Load {
			return cands[i].Load < cands[j].Load
		}
		return cands[i].RTT < cands[j].RTT
	})
	attempts := 0
	for _, p := range cands {
		if attempts >= meshCallPeers || ctx.Err() != nil {
			break
		}
		tok := d.consumerToken(ctx, p.NodeID, call.Intent)
		if tok == "" {
			continue // no credential this peer would accept
		}
		attempts++
		resp, info, err := d.mesh.Call(ctx, call, mesh.CallOptions{Peer: p.PeerID, ConsumerToken: tok, MaxAttempts: 1})
		if err != nil || resp == nil {
			d.log.Debug("mesh call attempt failed", "peer", p.PeerID.ShortString(), "error", err)
			continue
		}
		if resp.Status != wire.StatusSuccess && retryable(resp) {
			continue
		}
		return &admin.CallResult{Path: admin.PathMesh, PeerID: info.Peer.String(), NodeID: p.NodeID,
			Attempts: attempts, Response: resp}
	}
	return nil
}

func retryable(r *wire.Response) bool {
	if r.Status == wire.StatusTimeout || r.Error == nil {
		return true
	}
	switch r.Error.Code {
	case wire.CodeCapacityExceeded, wire.CodeRateLimited, wire.CodeTaskTimeout, wire.CodeBackendError,
		wire.CodeUnavailable, wire.CodeInternal, wire.CodeUnauthorized:
		return true
	}
	return false
}

// consumerToken asks a directory this node is registered with for a token
// to call target; "" when none can issue one.
func (d *daemon) consumerToken(ctx context.Context, target, intent string) string {
	for _, c := range d.clients {
		own := d.tokenFor(c.URL())
		if own == "" {
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, d.cfg.Directory.RequestTimeout.D())
		tok, err := c.ConsumerToken(tctx, own, target, intent)
		cancel()
		if err == nil {
			return tok
		}
		d.log.Debug("consumer token refused", "directory", c.URL(), "error", err)
	}
	return ""
}

// callHTTP discovers nodes through each directory in turn and posts the
// task to the best of them.
func (d *daemon) callHTTP(ctx context.Context, call *wire.Call, allowPlaintext bool) (*admin.CallResult, *wire.Error) {
	if len(d.clients) == 0 {
		return d.callLocal(ctx, call)
	}
	var lastErr *wire.Error
	for _, c := range d.clients {
		cl := &client.Caller{Directory: c, HTTP: d.taskClient, AllowPlaintext: allowPlaintext,
			Credential: func(ctx context.Context, nodeID, intent string) (string, error) {
				return d.consumerToken(ctx, nodeID, intent), nil
			}}
		resp, info, err := cl.Call(ctx, call, client.Query{Intent: call.Intent, QoS: call.Constraints.QoS})
		if err == nil {
			return &admin.CallResult{Path: admin.PathHTTP, NodeID: info.NodeID, Endpoint: info.Endpoint,
				Attempts: len(info.Tried), Encrypted: info.Encrypted, Response: resp}, nil
		}
		var werr *wire.Error
		switch {
		case errors.As(err, &werr):
			lastErr = werr
		case ctx.Err() != nil:
			return nil, wire.NewError(wire.CodeTaskTimeout, "no node answered within the task timeout")
		default:
			lastErr = wire.NewError(wire.CodeUnavailable, "directory unreachable: "+c.URL())
		}
	}
	return nil, lastErr
}

// callLocal serves the task on this node when no directory exists
// (directory.disabled) and no mesh peer answered.
func (d *daemon) callLocal(ctx context.Context, call *wire.Call) (*admin.CallResult, *wire.Error) {
	if d.operatorToken != "" {
		call.Auth = &wire.Auth{NodeToken: d.operatorToken}
	}
	resp := d.engine.Execute(ctx, call, wire.Caller{Transport: "local", RemoteIP: "127.0.0.1"})
	return &admin.CallResult{Path: admin.PathLocal, NodeID: d.id.NodeID(), Attempts: 1, Response: resp}, nil
}
