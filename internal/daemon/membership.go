package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/wire/token"
)

// Mesh membership (docs/spec-decisions.md, "Mesh authorisation: membership
// credentials"): the node keeps a credential its directory signed, renews
// it at half-life, and sends it on every mesh task stream; it keeps the
// directory keys it verifies other nodes' credentials with. Both live in
// membership.json (0600) so a restart while the directory is down still
// has them.

const (
	// memberRetryMin and memberRetryMax pace renewal attempts while no
	// directory issues a credential.
	memberRetryMin = time.Second
	memberRetryMax = 10 * time.Second
)

// membershipFile is membership.json. LOG-FORBIDDEN: Credential.
type membershipFile struct {
	Version int `json:"version"`
	// DirectoryKeys maps a directory URL to its Ed25519 key (hex).
	DirectoryKeys map[string]string `json:"directory_keys"`
	Credential    string            `json:"credential,omitempty"`
	Directory     string            `json:"directory,omitempty"`
	// IssuedAt is when this node received the credential (its own clock);
	// ExpiresAt the credential's exp.
	IssuedAt  int64 `json:"issued_at,omitempty"`
	ExpiresAt int64 `json:"expires_at,omitempty"`
}

// loadMembership restores the directory keys and the credential of the
// configured directories from membership.json; keys of directories no
// longer configured are not trusted.
func (d *daemon) loadMembership() error {
	mf := membershipFile{Version: 1, DirectoryKeys: map[string]string{}}
	b, err := os.ReadFile(d.o.Paths.Membership)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("reading membership: %w", err)
	}
	if err := paths.CheckPrivate(d.o.Paths.Membership); err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	if err := json.Unmarshal(b, &mf); err != nil {
		d.log.Warn("membership.json is corrupt; fetching anew from the directory")
		return nil
	}
	d.mu.Lock()
	for u, h := range mf.DirectoryKeys {
		if k, err := decodeKey(h); err == nil && slices.Contains(d.dirURLs, u) {
			d.dirKeys[u] = k
		}
	}
	if slices.Contains(d.dirURLs, mf.Directory) && mf.Credential != "" {
		d.member = mf
	}
	cred := d.member.Credential
	d.mu.Unlock()
	d.applyDirectoryKeys()
	if d.mesh != nil {
		d.mesh.SetMembership(cred)
	}
	return nil
}

// saveMembership writes membership.json (atomically, 0600).
func (d *daemon) saveMembership() {
	d.mu.Lock()
	mf := d.member
	mf.Version = 1
	mf.DirectoryKeys = map[string]string{}
	for u, k := range d.dirKeys {
		mf.DirectoryKeys[u] = hex.EncodeToString(k)
	}
	d.mu.Unlock()
	b, err := json.MarshalIndent(mf, "", "  ")
	if err == nil {
		err = paths.WriteFileAtomic(d.o.Paths.Membership, append(b, '\n'), 0o600)
	}
	if err != nil {
		d.log.Warn("saving membership", "error", err)
	}
}

// applyDirectoryKeys hands the known directory keys to the engine
// (consumer tokens) and the mesh (membership credentials).
func (d *daemon) applyDirectoryKeys() {
	d.mu.Lock()
	keys := make([]ed25519.PublicKey, 0, len(d.dirKeys))
	for _, k := range d.dirKeys {
		keys = append(keys, k)
	}
	d.mu.Unlock()
	d.engine.SetDirectoryKeys(keys...)
	if d.mesh != nil {
		d.mesh.SetDirectoryKeys(keys...)
	}
}

// hasMembership reports whether this node holds a credential to send
// (valid or not: a peer's refusal then names the expiry).
func (d *daemon) hasMembership() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.member.Credential != ""
}

// membershipLoop renews the credential at half-life, and at once after a
// registration (memberKick); while no directory issues one it retries
// every memberRetryMin, doubling up to memberRetryMax.
func (d *daemon) membershipLoop(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	retry := memberRetryMin
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.memberKick:
		}
		next, err := d.renewMembership(ctx)
		if err != nil {
			d.log.Debug("membership not renewed", "error", err)
			next, retry = retry, min(2*retry, memberRetryMax)
		} else {
			retry = memberRetryMin
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

// renewMembership fetches a credential when none is held or half its
// lifetime has passed, and returns how long until the next renewal.
func (d *daemon) renewMembership(ctx context.Context) (time.Duration, error) {
	now := time.Now()
	d.mu.Lock()
	cur := d.member
	d.mu.Unlock()
	if cur.Credential != "" {
		half := time.Unix(cur.IssuedAt, 0).Add(time.Duration(cur.ExpiresAt-cur.IssuedAt) * time.Second / 2)
		if now.Before(half) {
			return half.Sub(now), nil
		}
	}
	var lastErr error = errors.New("not registered with any directory yet")
	for _, c := range d.clients {
		own := d.tokenFor(c.URL())
		if own == "" {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, d.cfg.Directory.RequestTimeout.D())
		mf, err := d.fetchMembership(rctx, c.URL(), own)
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		d.mu.Lock()
		d.member = mf
		d.mu.Unlock()
		d.mesh.SetMembership(mf.Credential)
		d.saveMembership()
		life := time.Duration(mf.ExpiresAt-mf.IssuedAt) * time.Second
		d.log.Info("mesh membership renewed", "directory", c.URL(), "expires_at", time.Unix(mf.ExpiresAt, 0).UTC().Format(time.RFC3339))
		return max(life/2, memberRetryMin), nil
	}
	return 0, lastErr
}

// fetchMembership gets the directory's key (it may have rotated) and a
// credential, and checks the credential against the key and this node's
// own identity before trusting either.
func (d *daemon) fetchMembership(ctx context.Context, dir, nodeToken string) (membershipFile, error) {
	c := d.clientFor(dir)
	hexKey, err := c.DirectoryKey(ctx)
	if err != nil {
		return membershipFile{}, err
	}
	k, err := decodeKey(hexKey)
	if err != nil {
		return membershipFile{}, err
	}
	cred, exp, err := c.Membership(ctx, nodeToken)
	if err != nil {
		return membershipFile{}, err
	}
	now := time.Now()
	// On the mesh the node goes by its key's node_id (a rotated or
	// recovered node's directory node_id is an older one).
	check := token.MembershipCheck{PeerID: d.host.ID().String(), NodeID: d.id.DerivedNodeID()}
	if _, err := token.VerifyMembership([]ed25519.PublicKey{k}, cred, check, now); err != nil {
		return membershipFile{}, fmt.Errorf("directory %s issued an unusable membership credential: %w", dir, err)
	}
	d.setDirectoryKey(dir, k)
	return membershipFile{Credential: cred, Directory: dir, IssuedAt: now.Unix(), ExpiresAt: exp.Unix()}, nil
}

// setDirectoryKey records dir's key, applies and persists the key set when
// it changed.
func (d *daemon) setDirectoryKey(dir string, k ed25519.PublicKey) {
	d.mu.Lock()
	old, had := d.dirKeys[dir]
	d.dirKeys[dir] = k
	d.mu.Unlock()
	if had && old.Equal(k) {
		return
	}
	d.applyDirectoryKeys()
	d.saveMembership()
}
