package federation

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// RegisterReplicaRequest is the POST /v1/replicas/register body (S.13 §7.1).
type RegisterReplicaRequest struct {
	DID              string `json:"did"`
	Endpoint         string `json:"endpoint"`
	TrustTierRequest string `json:"trust_tier_request,omitempty"`
	RegionHint       string `json:"region_hint,omitempty"`
}

// RegisterReplicaResponse is its 200 body.
type RegisterReplicaResponse struct {
	ReplicaID       string `json:"replica_id"`
	ReplicaToken    string `json:"replica_token"`
	SinceSeq        int64  `json:"since_seq"`
	GenesisHash     string `json:"genesis_hash"`
	DIDAcknowledged bool   `json:"did_acknowledged"`
	TrustTier       string `json:"trust_tier"`
	ExpiresAt       string `json:"expires_at"`
}

// replicaRow is a seed-side replica credential row.
type replicaRow struct {
	ReplicaID, DID, Endpoint, Tier, RegisteredAt string
	Status                                       ReplicaStatus
	JTI                                          string
	ExpiresAt                                    time.Time
}

func loadReplicaRow(ctx context.Context, q queryer, col, val string) (*replicaRow, error) {
	var r replicaRow
	var status string
	var exp int64
	err := q.QueryRowContext(ctx, `SELECT replica_id, did, endpoint, trust_tier, status, registered_at, token_jti, expires_at_ms
		FROM fed_replica_auth WHERE `+col+` = ?`, val).Scan(&r.ReplicaID, &r.DID, &r.Endpoint, &r.Tier, &status, &r.RegisteredAt, &r.JTI, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading replica row: %w", err)
	}
	r.Status, r.ExpiresAt = ReplicaStatus(status), time.UnixMilli(exp)
	return &r, nil
}

// authReplica authenticates the bearer: token signature and expiry, then
// the persistent row (active, unexpired, current jti), so a rotated,
// deregistered or expired credential fails even while the JWT itself still
// verifies (DIR-FED-22, DIR-FED-23).
func (s *Seed) authReplica(r *http.Request) (*replicaRow, *wire.Error) {
	deny := wire.NewError(wire.CodeUnauthorized, "invalid or inactive replica credential")
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return nil, deny
	}
	now := s.cfg.Now()
	claims, err := verifyReplicaToken(s.PublicKey(), tok, now)
	if err != nil {
		return nil, deny
	}
	row, err := loadReplicaRow(r.Context(), s.el.db, "replica_id", claims.Sub)
	if err != nil {
		s.log.Error("authenticating replica", "error", err)
		return nil, wire.NewError(wire.CodeInternal, "internal error")
	}
	if row == nil || CheckStanding(row.Status, row.ExpiresAt, now) != nil || row.JTI != claims.JTI {
		return nil, deny
	}
	return row, nil
}

// handleRegisterReplica runs the §7.1 handshake: validate, resolve the DID
// (DIR-FED-11), guard the endpoint (DIR-FED-12), probe its health, then
// upsert the row idempotently on did (DIR-FED-13/24) and emit
// REPLICA_REGISTERED in the same transaction.
func (s *Seed) handleRegisterReplica(w http.ResponseWriter, r *http.Request) {
	if ok, retry := s.registerRL.Allow(sourceKey(r), s.cfg.Now()); !ok {
		rateLimited(w, retry)
		return
	}
	var req RegisterReplicaRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	if err := dec.Decode(&req); err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodeValidationError, "body must be a JSON object with did and endpoint"))
		return
	}
	if werr := s.validateReplica(r.Context(), &req); werr != nil {
		httpx.WriteError(w, werr)
		return
	}
	now := s.cfg.Now()
	var resp RegisterReplicaResponse
	var again bool
	evs, err := s.el.append(r.Context(), func(tx *sql.Tx) (chs []Change, err error) {
		chs, again, err = s.upsertReplica(r.Context(), tx, &req, now, &resp)
		return chs, err
	})
	if err != nil {
		s.log.Error("registering replica", "error", err)
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "internal error"))
		return
	}
	s.published(r.Context(), evs)
	_, resp.GenesisHash, _ = s.el.head() // DIR-FED-14: the value GET /v1/events serves
	// since_seq is 0 (full bootstrap) unless a re-registering replica tells
	// us how far it got (§7.1 response table).
	if v := r.URL.Query().Get("last_seen_seq"); again && v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && n <= s.HeadSeq() {
			resp.SinceSeq = n
		}
	}
	s.log.Info("replica registered", "replica_id", resp.ReplicaID, "did", req.DID)
	httpx.WriteJSON(w, http.StatusOK, resp)
}

func (s *Seed) validateReplica(ctx context.Context, req *RegisterReplicaRequest) *wire.Error {
	if req.DID == "" || len(req.DID) > 512 || req.Endpoint == "" || len(req.Endpoint) > 2048 {
		return wire.NewError(wire.CodeValidationError, "did and endpoint are required")
	}
	switch req.TrustTierRequest {
	case "", TrustLow, TrustMedium, TrustHigh:
	default:
		return wire.NewError(wire.CodeE044, "trust_tier_request must be low, medium or high").WithField("trust_tier_request")
	}
	if len(req.RegionHint) > 64 {
		return wire.NewError(wire.CodeValidationError, "region_hint too long").WithField("region_hint")
	}
	if err := s.guardEndpoint(ctx, req.Endpoint); err != nil {
		return wire.NewError(wire.CodeE043, "endpoint must be https and publicly routable").WithField("endpoint")
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	defer cancel()
	doc, err := ResolveDID(pctx, s.cfg.HTTPClient, req.DID, s.cfg.Insecure)
	if err != nil {
		return wire.NewError(wire.CodeE040, "did does not resolve to a valid DID document").WithField("did")
	}
	if _, err := doc.Ed25519Key(); err != nil {
		return wire.NewError(wire.CodeE041, "DID document has no Ed25519 verification method").WithField("did")
	}
	if !s.healthy(pctx, req.Endpoint) {
		return wire.NewError(wire.CodeE042, "endpoint /iicp/health did not return 200").WithField("endpoint")
	}
	return nil
}

// guardEndpoint is the §7.1 step 3 scheme and address guard (SSRF parity
// with /v1/probe): https only, a routable name, and no address it resolves
// to may be loopback, private, link-local, multicast, unspecified or a
// transition address embedding one (httpx.CheckAddr). The fetches
// themselves re-check the address they dial (httpx.GuardedClient), so a
// name that re-resolves elsewhere (DNS rebinding) gains nothing. Insecure
// lifts both for loopback tests.
func (s *Seed) guardEndpoint(ctx context.Context, endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.User != nil {
		return errors.New("bad endpoint URL")
	}
	if s.cfg.Insecure {
		if u.Scheme != "https" && u.Scheme != "http" {
			return errors.New("endpoint scheme")
		}
		return nil
	}
	if u.Scheme != "https" {
		return errors.New("endpoint must be https")
	}
	if err := httpx.CheckHost(u.Hostname()); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", u.Hostname())
	if err != nil || len(addrs) == 0 {
		return errors.New("endpoint does not resolve")
	}
	for _, a := range addrs {
		if err := httpx.CheckAddr(a); err != nil {
			return err
		}
	}
	return nil
}

// healthy probes endpoint/iicp/health (§7.1 step 2).
func (s *Seed) healthy(ctx context.Context, endpoint string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(endpoint, "/")+"/iicp/health", nil)
	if err != nil {
		return false
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode == http.StatusOK
}

// upsertReplica creates or reactivates the row for req.DID: the same
// replica_id, status active, trust reset to low, a new jti (the previous
// token stops working) and a fresh expiry (DIR-FED-13, DIR-FED-24).
func (s *Seed) upsertReplica(ctx context.Context, tx *sql.Tx, req *RegisterReplicaRequest, now time.Time, resp *RegisterReplicaResponse) ([]Change, bool, error) {
	row, err := loadReplicaRow(ctx, tx, "did", req.DID)
	if err != nil {
		return nil, false, err
	}
	id, registeredAt := newUUID(), now.UTC().Format(time.RFC3339)
	if row != nil {
		id, registeredAt = row.ReplicaID, row.RegisteredAt
	}
	jti, exp := newUUID(), now.Add(s.cfg.ReplicaTokenTTL)
	if _, err := tx.ExecContext(ctx, `INSERT INTO fed_replica_auth (replica_id, did, endpoint, trust_tier, status, registered_at, token_jti, expires_at_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(replica_id) DO UPDATE SET endpoint = excluded.endpoint, trust_tier = excluded.trust_tier,
			status = excluded.status, token_jti = excluded.token_jti, expires_at_ms = excluded.expires_at_ms`,
		id, req.DID, req.Endpoint, TrustLow, string(ReplicaActive), registeredAt, jti, exp.UnixMilli()); err != nil {
		return nil, false, fmt.Errorf("upserting replica: %w", err)
	}
	tok, err := signReplicaToken(s.cfg.Key, ReplicaClaims{Iss: s.cfg.DID, Sub: id, Role: tokenRole, Scope: tokenScope,
		JTI: jti, IAT: now.Unix(), Exp: exp.Unix()})
	if err != nil {
		return nil, false, fmt.Errorf("signing replica token: %w", err)
	}
	*resp = RegisterReplicaResponse{ReplicaID: id, ReplicaToken: tok, DIDAcknowledged: true,
		TrustTier: TrustLow, ExpiresAt: exp.UTC().Format(time.RFC3339)}
	return []Change{{Type: EventReplicaRegistered, Payload: ReplicaPayload{ReplicaID: id, DID: req.DID,
		Endpoint: req.Endpoint, TrustTier: TrustLow, RegisteredAt: registeredAt, RegionHint: req.RegionHint}}}, row != nil, nil
}

// handleDeregisterReplica decommissions the authenticated replica in one
// transaction: row tombstoned, credential invalidated, registry entry gone,
// REPLICA_DEREGISTERED appended (S.13 §7.2, DIR-FED-22).
func (s *Seed) handleDeregisterReplica(w http.ResponseWriter, r *http.Request) {
	row, werr := s.authReplica(r)
	if werr != nil {
		httpx.WriteError(w, werr)
		return
	}
	evs, err := s.el.append(r.Context(), func(tx *sql.Tx) ([]Change, error) {
		res, err := tx.ExecContext(r.Context(), `UPDATE fed_replica_auth SET status = ?, token_jti = '', expires_at_ms = 0
			WHERE replica_id = ? AND status = ? AND token_jti = ?`, string(ReplicaDecommissioned), row.ReplicaID, string(ReplicaActive), row.JTI)
		if err != nil {
			return nil, fmt.Errorf("decommissioning replica: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil, errReplicaRaced
		}
		return []Change{{Type: EventReplicaDeregistered, Payload: ReplicaPayload{ReplicaID: row.ReplicaID, DID: row.DID}}}, nil
	})
	if errors.Is(err, errReplicaRaced) {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "invalid or inactive replica credential"))
		return
	}
	if err != nil {
		s.log.Error("deregistering replica", "error", err)
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "internal error"))
		return
	}
	s.published(r.Context(), evs)
	s.log.Info("replica decommissioned", "replica_id", row.ReplicaID)
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": string(ReplicaDecommissioned)})
}

// errReplicaRaced: the credential changed between authentication and the
// transaction (a concurrent rotation or deregistration).
var errReplicaRaced = errors.New("replica credential changed concurrently")
