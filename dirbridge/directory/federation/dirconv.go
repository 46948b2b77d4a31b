package federation

import (
	"context"
	"encoding/json"
	"time"

	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/wire"
)

// Conversions between the directory's store types and the federated
// payloads. What crosses into the log is the public registration only: no
// credential, no token, no observed source address (S.13 §5.2 "MUST NOT
// include credentials ... private contact data").

// cipPolicyOf is the §5.4 cip_policy object for a record.
func cipPolicyOf(rec *directory.NodeRecord) json.RawMessage {
	b, _ := json.Marshal(struct {
		AllowRemoteInference bool `json:"allow_remote_inference"`
		AllowToolExecution   bool `json:"allow_tool_execution"`
		AllowFileAccess      bool `json:"allow_file_access"`
	}{AllowRemoteInference: rec.AllowRemoteInference})
	return b
}

// payloadOf is the REGISTER payload for a directory record.
func payloadOf(rec *directory.NodeRecord) RegisterPayload {
	limits := rec.Limits
	p := RegisterPayload{
		NodeID: rec.NodeID, Endpoint: rec.Endpoint, TransportEndpoint: rec.TransportEndpoint, Region: rec.Region,
		CIPConformanceLevel: rec.CIPLevel, CIPPolicy: cipPolicyOf(rec), Capabilities: rec.Capabilities, Limits: &limits,
		Availability: rec.Availability, CXPublicKey: rec.CXPublicKey, Extensions: rec.Extensions,
		PublicKey: rec.PublicKey, TransportMethod: rec.TransportMethod, Backend: rec.Backend,
		SDKLanguage: rec.SDKLanguage, SDKVersion: rec.SDKVersion, ImplementationName: rec.ImplementationName,
		ImplementationVersion: rec.ImplementationVersion, SDKCompatVersion: rec.SDKCompatVersion,
	}
	if p.Capabilities == nil {
		p.Capabilities = []wire.Capability{}
	}
	if !rec.RegisteredAt.IsZero() {
		p.RegisteredAt = rec.RegisteredAt.UTC().Format(time.RFC3339Nano)
	}
	return p
}

// recordOf is the directory record a verified REGISTER describes; tsMs is
// the event's time (the record's UpdatedAt).
func recordOf(p *RegisterPayload, tsMs int64) *directory.NodeRecord {
	at := time.UnixMilli(tsMs).UTC()
	rec := &directory.NodeRecord{
		NodeID: p.NodeID, Endpoint: p.Endpoint, TransportEndpoint: p.TransportEndpoint, Region: p.Region,
		Capabilities: p.Capabilities, Availability: p.Availability, PublicKey: p.PublicKey,
		CXPublicKey: p.CXPublicKey, Extensions: p.Extensions, CIPLevel: p.CIPConformanceLevel,
		SDKLanguage: p.SDKLanguage, SDKVersion: p.SDKVersion, ImplementationName: p.ImplementationName,
		ImplementationVersion: p.ImplementationVersion, SDKCompatVersion: p.SDKCompatVersion,
		Backend: p.Backend, TransportMethod: p.TransportMethod, RegisteredAt: at, UpdatedAt: at,
	}
	if p.Limits != nil {
		rec.Limits = *p.Limits
	}
	if len(p.CIPPolicy) > 0 {
		var pol struct {
			AllowRemoteInference bool `json:"allow_remote_inference"`
		}
		if json.Unmarshal(p.CIPPolicy, &pol) == nil {
			rec.AllowRemoteInference = pol.AllowRemoteInference
		}
	}
	if rec.CIPLevel == "" {
		rec.CIPLevel = "CIP-None"
	}
	if t, err := time.Parse(time.RFC3339Nano, p.RegisteredAt); err == nil {
		rec.RegisteredAt = t.UTC()
	}
	return rec
}

// changeOf turns a directory change into the federated change to log.
// ev.Credential and ev.ObservedIP are deliberately dropped.
func changeOf(ev *directory.ChangeEvent) (Change, bool) {
	switch ev.Kind {
	case directory.ChangeRegister:
		if ev.Record == nil {
			return Change{}, false
		}
		return Change{Type: EventRegister, Payload: payloadOf(ev.Record)}, true
	case directory.ChangeDeregister:
		return Change{Type: EventDeregister, Payload: DeregisterPayload{NodeID: ev.NodeID, Reason: ev.Reason}}, true
	}
	return Change{}, false
}

// dirLive is the seed's LiveSource and LiveFeed over the directory.
type dirLive struct{ s *directory.Server }

// liveStateOf converts nl; the result points into nl (Reputation, Load),
// so a digest of 40k rows does not allocate two floats a row.
func liveStateOf(nl *directory.NodeLive) LiveState {
	ls := LiveState{NodeID: nl.NodeID, ActiveJobs: nl.ActiveJobs, Available: nl.Available, LastSeen: nl.LastSeen,
		ReputationTier: nl.ReputationTier, CompletedTasks: nl.CompletedTasks, SLAP95Ms: nl.SLAP95Ms}
	ls.Reputation = &nl.Reputation
	if nl.LoadReported {
		ls.Load = &nl.Load
	}
	return ls
}

func (l dirLive) LiveState(id string) (LiveState, bool) {
	nl, ok := l.s.LiveState(id)
	if !ok {
		return LiveState{}, false
	}
	return liveStateOf(&nl), true
}

func (l dirLive) LiveSince(t time.Time) []LiveState {
	nls := l.s.LiveSince(t)
	out := make([]LiveState, len(nls))
	for i := range nls {
		out[i] = liveStateOf(&nls[i])
	}
	return out
}

// dirSink mirrors a replica's verified state into a directory store.
type dirSink struct{ s *directory.Server }

func (k dirSink) ApplyState(ctx context.Context, ch *StateChange) error {
	return k.ApplyStates(ctx, []*StateChange{ch})
}

// ApplyStates applies REGISTER and DEREGISTER in one transaction. Credit
// and reputation events have no directory counterpart: reputation reaches
// the directory through liveness digests.
func (k dirSink) ApplyStates(ctx context.Context, chs []*StateChange) error {
	evs := make([]directory.ChangeEvent, 0, len(chs))
	for _, ch := range chs {
		at := time.UnixMilli(ch.TsMs)
		switch ch.Type {
		case EventRegister:
			evs = append(evs, directory.ChangeEvent{Kind: directory.ChangeRegister, NodeID: ch.NodeID,
				Record: recordOf(ch.Register, ch.TsMs), At: at})
		case EventDeregister:
			evs = append(evs, directory.ChangeEvent{Kind: directory.ChangeDeregister, NodeID: ch.NodeID,
				Reason: directory.ReasonExplicit, At: at})
		}
	}
	return k.s.ApplyReplicated(ctx, evs)
}

func (k dirSink) ApplyLive(_ context.Context, nodes []LiveNode) {
	nls := make([]directory.NodeLive, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		nl := directory.NodeLive{NodeID: n.NodeID, LastSeen: time.UnixMilli(n.LastSeenMs), Available: n.Available,
			ActiveJobs: n.ActiveJobs, CompletedTasks: n.CompletedTasks, SLAP95Ms: n.SLAP95Ms, Reputation: 0.5} // 0.5: iicp-dir §3.2 default
		if n.Load != nil {
			nl.Load, nl.LoadReported = *n.Load, true
		}
		if n.Reputation != nil {
			nl.Reputation = *n.Reputation
		}
		nls[i] = nl
	}
	k.s.ApplyLive(nls)
}
