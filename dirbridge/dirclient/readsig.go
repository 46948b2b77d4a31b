package dirclient

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/wire"
)

// Replica response signing (iicp-federated-directory.md §6.5, DIR-FED-20):
// a replica listed in its seed's registry signs every discover answer; a
// client uses no node of an answer whose signature does not verify under
// the key of the replica's DID document.
const (
	headerReplicaSig  = "X-IICP-Replica-Sig"
	headerSnapshotSeq = "X-IICP-Snapshot-Seq"
)

// ErrReplicaSignature is IICP-SEC-REPLICA-01: a registered replica's answer
// is unsigned or not what the replica signed.
var ErrReplicaSignature = errors.New("IICP-SEC-REPLICA-01: replica response signature missing or invalid")

// maxWellKnownBody bounds the registry and DID documents a client fetches.
const maxWellKnownBody = 256 << 10

// replicaVerifier returns the verify hook for a replica with key pub.
func replicaVerifier(pub ed25519.PublicKey) func(*http.Request, http.Header, []byte) error {
	return func(req *http.Request, h http.Header, body []byte) error {
		return verifyReplicaAnswer(pub, req.Method, req.URL.Path, req.URL.RawQuery, h.Get(headerSnapshotSeq), h.Get(headerReplicaSig), body)
	}
}

// verifyReplicaAnswer checks X-IICP-Replica-Sig: the hex Ed25519 signature
// of SHA256(METHOD:path:query_canonical:snapshot_seq:SHA256_hex(body)).
func verifyReplicaAnswer(pub ed25519.PublicKey, method, path, rawQuery, seqHeader, sigHex string, body []byte) error {
	if !wire.VerifyReplicaResponse(pub, method, path, rawQuery, seqHeader, sigHex, body) {
		return ErrReplicaSignature
	}
	return nil
}

// replicaEntry is one row of /.well-known/iicp-replicas.json (§6.4); only
// the fields a client acts on.
type replicaEntry struct {
	ReplicaID  string `json:"replica_id"`
	DID        string `json:"did"`
	Endpoint   string `json:"endpoint"`
	TrustTier  string `json:"trust_tier"`
	RegionHint string `json:"region_hint,omitempty"`
}

// maxReplicas bounds how many registry entries a client follows.
const maxReplicas = 16

// fetchReplicas reads the seed's trusted-replica registry (§6.4).
func (c *Client) fetchReplicas(ctx context.Context) ([]replicaEntry, error) {
	data, err := c.getRaw(ctx, "/.well-known/iicp-replicas.json")
	if err != nil {
		return nil, err
	}
	return parseReplicas(data, c.base.Scheme == "http")
}

// parseReplicas decodes a registry document. Entries that fail validation
// are dropped (§6.4: validate every field before acting); a plaintext
// endpoint is accepted only from a plaintext seed (dev mode on loopback).
func parseReplicas(data []byte, plaintextSeed bool) ([]replicaEntry, error) {
	var doc struct {
		Replicas []replicaEntry `json:"replicas"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Op: "well-known", Status: http.StatusOK, Message: "replica registry is not the expected JSON"}
	}
	var out []replicaEntry
	for _, r := range doc.Replicas {
		u, err := url.Parse(r.Endpoint)
		switch {
		case err != nil || u.Host == "" || u.User != nil || len(r.Endpoint) > 2048:
			continue
		case !strings.HasPrefix(r.DID, "did:web:") || len(r.DID) > 512:
			continue
		case u.Scheme != "https" && !(u.Scheme == "http" && plaintextSeed):
			continue
		}
		out = append(out, r)
		if len(out) == maxReplicas {
			break
		}
	}
	return out, nil
}

// didKey fetches the DID document a replica serves and returns its first
// Ed25519 key.
func (c *Client) didKey(ctx context.Context, did string) (ed25519.PublicKey, error) {
	data, err := c.getRaw(ctx, "/.well-known/did.json")
	if err != nil {
		return nil, err
	}
	return parseDIDKey(data, did)
}

// parseDIDKey returns the first Ed25519 key of a DID document whose id is
// did (the registry's entry), so a replica cannot present another
// identity's key.
func parseDIDKey(data []byte, did string) (ed25519.PublicKey, error) {
	var doc struct {
		ID                 string `json:"id"`
		VerificationMethod []struct {
			PublicKeyJwk *struct {
				Kty string `json:"kty"`
				Crv string `json:"crv"`
				X   string `json:"x"`
			} `json:"publicKeyJwk"`
		} `json:"verificationMethod"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, errors.New("replica DID document is not the expected JSON")
	}
	if doc.ID != did {
		return nil, errors.New("replica DID document names another DID than the seed's registry")
	}
	for _, vm := range doc.VerificationMethod {
		j := vm.PublicKeyJwk
		if j == nil || j.Kty != "OKP" || j.Crv != "Ed25519" {
			continue
		}
		if b, err := base64.RawURLEncoding.DecodeString(j.X); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, errors.New("replica DID document has no Ed25519 key")
}

// getJSON GETs path (relative to the host root, not the API prefix) and
// decodes a bounded 200 answer.
func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	data, err := c.getRaw(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &Error{Op: "well-known", Status: http.StatusOK, Message: "document is not the expected JSON"}
	}
	return nil
}

// getRaw GETs path (relative to the host root) and returns a bounded 200 body.
func (c *Client) getRaw(ctx context.Context, path string) ([]byte, error) {
	u := *c.base
	u.Path, u.RawQuery = path, ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, &Error{Op: "well-known", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, &Error{Op: "well-known", Err: httperr.Transport("directory", err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxWellKnownBody+1))
	if err != nil || len(data) > maxWellKnownBody {
		return nil, &Error{Op: "well-known", Status: resp.StatusCode, Message: "unreadable or oversized document"}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError("well-known", resp, data)
	}
	return data, nil
}
