package operator

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/wire"
)

// DelegationFile is the delegation's file name in a node's state
// directory (paths.Paths.OperatorDelegation).
const DelegationFile = "operator-delegation.json"

// maxDelegationFile bounds what ReadDelegation reads.
const maxDelegationFile = 4 << 10

// DelegationPath is where the node in p keeps its delegation.
func DelegationPath(p paths.Paths) string { return p.OperatorDelegation }

// WriteDelegation stores d at path (0600, atomically). Not secret, but it
// lives beside the node's credentials and is the node's business only.
func WriteDelegation(path string, d wire.OperatorDelegation) error {
	b, _ := json.MarshalIndent(d, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	return paths.WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// ReadDelegation reads the delegation at path; ok is false when there is
// none.
func ReadDelegation(path string) (d wire.OperatorDelegation, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return d, false, nil
	}
	if err != nil {
		return d, false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDelegationFile+1))
	if err != nil {
		return d, false, err
	}
	if len(b) > maxDelegationFile || json.Unmarshal(b, &d) != nil {
		return d, false, fmt.Errorf("%s is not an operator delegation; run meshnode operator delegate again", filepath.Base(path))
	}
	return d, true, nil
}

// ForNode checks the delegation a node is about to send: it must name
// nodeID, verify, and not be expired at now. The error says what to run.
func ForNode(d wire.OperatorDelegation, nodeID string, now time.Time) error {
	if _, err := wire.VerifyDelegation(&d, nodeID, now.Unix()); err != nil {
		return fmt.Errorf("%w; run meshnode operator delegate --home <this node's home> to sign a fresh one", err)
	}
	return nil
}

// Recover signs a recovery statement: nodeID (delegated to this operator)
// now goes by the node key newPub, accepted by a directory until ttl from
// now (wire.NodeKeyBinding, signer "operator").
func (k *Key) Recover(nodeID string, newPub ed25519.PublicKey, now time.Time, ttl time.Duration) wire.NodeKeyBinding {
	return wire.SignNodeKeyBinding(k.priv, wire.BindingSignerOperator, nodeID, newPub, now.Unix(), now.Add(ttl).Unix())
}
