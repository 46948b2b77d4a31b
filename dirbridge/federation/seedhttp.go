package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// Query limits of GET /v1/events (S.13 §5.2).
const (
	defaultEventsLimit = 100
	maxEventsLimit     = 1000
)

// EventsResponse is the GET /v1/events body (S.13 §5.2). head_seq is
// additive: it tells a replica whether it has reached the head.
type EventsResponse struct {
	Events       []Event `json:"events"`
	NextSeq      int64   `json:"next_seq"`
	HeadSeq      int64   `json:"head_seq"`
	GenesisHash  string  `json:"genesis_hash"`
	ReplicaLagMs int64   `json:"replica_lag_ms"`
}

func (s *Seed) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/events", methodOnly(http.MethodGet, s.handleEvents))
	mux.HandleFunc("/v1/snapshot", methodOnly(http.MethodGet, s.handleSnapshot))
	mux.HandleFunc("/v1/liveness", methodOnly(http.MethodGet, s.handleLiveness))
	mux.HandleFunc("/v1/replicas/register", methodOnly(http.MethodPost, s.handleRegisterReplica))
	mux.HandleFunc("/v1/replicas/deregister", methodOnly(http.MethodPost, s.handleDeregisterReplica))
	mux.HandleFunc("/.well-known/did.json", methodOnly(http.MethodGet, s.handleDID))
	mux.HandleFunc("/.well-known/iicp-replicas.json", methodOnly(http.MethodGet, s.handleReplicaRegistry))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "no such route"))
	})
	return httpx.Recoverer(s.log, mux)
}

// parseEventsQuery validates since_seq, limit and event_types.
func parseEventsQuery(r *http.Request) (since int64, limit int, types []EventType, werr *wire.Error) {
	q := r.URL.Query()
	limit = defaultEventsLimit
	if v := q.Get("since_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, nil, wire.NewError(wire.CodeValidationError, "since_seq must be a non-negative integer").WithField("since_seq")
		}
		since = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, nil, wire.NewError(wire.CodeValidationError, "limit must be a positive integer").WithField("limit")
		}
		limit = min(n, maxEventsLimit) // hard cap 1000
	}
	if v := q.Get("event_types"); v != "" {
		for _, t := range strings.Split(v, ",") {
			et := EventType(strings.TrimSpace(t))
			if len(types) >= 16 {
				return 0, 0, nil, wire.NewError(wire.CodeValidationError, "too many event_types").WithField("event_types")
			}
			// Non-federated names (HEARTBEAT) are valid filters that match
			// nothing: the log never holds them (DIR-FED-16).
			types = append(types, et)
		}
	}
	return since, limit, types, nil
}

// handleEvents serves the public, signed event tail (S.13 §5.2). Every
// response carries genesis_hash (DIR-FED-07); a since_seq before the rolling
// window gets IICP-E045 snapshot_required.
func (s *Seed) handleEvents(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	if ok, retry := s.eventsRL.Allow(sourceKey(r), now); !ok {
		rateLimited(w, retry)
		return
	}
	since, limit, types, werr := parseEventsQuery(r)
	if werr != nil {
		httpx.WriteError(w, werr)
		return
	}
	head, genesis, _ := s.el.head()
	evs, err := s.el.rangeEvents(r.Context(), since, limit, types)
	if errors.Is(err, errPruned) {
		// S.13 §5.5 lists IICP-E045 under "Errors (422)".
		httpx.WriteError(w, wire.NewErrorStatus(wire.CodeE045, http.StatusUnprocessableEntity,
			"snapshot_required: since_seq is older than the rolling window; bootstrap from GET /v1/snapshot"))
		return
	}
	if err != nil {
		s.log.Error("reading events", "error", err)
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "internal error"))
		return
	}
	resp := EventsResponse{Events: evs, NextSeq: since + 1, HeadSeq: head, GenesisHash: genesis}
	if len(evs) > 0 {
		resp.NextSeq = evs[len(evs)-1].Seq + 1
		if last := evs[len(evs)-1].Seq; last > head {
			resp.HeadSeq = last // an append landed between the two reads
		}
	}
	if ts, err := s.el.latestTs(r.Context()); err == nil && ts > 0 {
		resp.ReplicaLagMs = max(0, now.UnixMilli()-ts)
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}

// handleSnapshot serves the signed point-in-time state to an authenticated
// replica (S.13 §5.5).
func (s *Seed) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	row, werr := s.authReplica(r)
	if werr != nil {
		httpx.WriteError(w, werr)
		return
	}
	if ok, retry := s.snapshotRL.Allow(row.ReplicaID, s.cfg.Now()); !ok {
		rateLimited(w, retry)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SnapshotTimeout)
	defer cancel()
	snap, err := s.el.snapshot(ctx, s.cfg.Live)
	if err != nil {
		if ctx.Err() != nil {
			httpx.WriteError(w, unavailable(wire.CodeE046, "snapshot generation timed out; retry after 30s"))
			return
		}
		s.log.Error("generating snapshot", "error", err)
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "internal error"))
		return
	}
	body, err := json.Marshal(snap)
	if err != nil {
		s.log.Error("encoding snapshot", "error", err)
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "internal error"))
		return
	}
	s.metrics.snapshots.Inc()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(HeaderSnapshotSig, SignSnapshot(s.cfg.Key, snap.SnapshotSeq, body))
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// handleDID publishes the seed's DID document (S.13 §4).
func (s *Seed) handleDID(w http.ResponseWriter, _ *http.Request) {
	base := strings.TrimSuffix(s.cfg.PublicURL, "/")
	doc := NewDIDDocument(s.cfg.DID, s.PublicKey(),
		DIDService{ID: s.cfg.DID + "#event-log", Type: "IicpEventLog", ServiceEndpoint: base + "/v1/events"},
		DIDService{ID: s.cfg.DID + "#trusted-replicas", Type: "IicpTrustedReplicas", ServiceEndpoint: base + "/.well-known/iicp-replicas.json"})
	httpx.WriteJSON(w, http.StatusOK, doc)
}

// ReplicaRegistry is the v2 /.well-known/iicp-replicas.json document
// (S.13 §6.4, DIR-FED-19).
type ReplicaRegistry struct {
	Context       string         `json:"@context"`
	SchemaVersion string         `json:"schema_version"`
	GenesisSeed   string         `json:"genesis_seed"`
	Version       string         `json:"version"`
	UpdatedAt     string         `json:"updated_at"`
	Replicas      []ReplicaEntry `json:"replicas"`
}

// handleReplicaRegistry lists active replicas; decommissioned ones are
// excluded immediately (S.13 §7.2 step 3).
func (s *Seed) handleReplicaRegistry(w http.ResponseWriter, r *http.Request) {
	reps, err := loadReplicas(r.Context(), s.el.db, true)
	if err != nil {
		s.log.Error("loading replicas", "error", err)
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "internal error"))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, ReplicaRegistry{
		Context: "https://iicp.network/ns/replicas/v1", SchemaVersion: "2", GenesisSeed: s.cfg.DID, Version: "2",
		UpdatedAt: s.cfg.Now().UTC().Format("2006-01-02"), Replicas: reps})
}
