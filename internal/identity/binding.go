package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/wire"
)

// maxBindingFile bounds what ReadBinding reads.
const maxBindingFile = 4 << 10

// ErrBindingKey reports a binding made for another node key.
var ErrBindingKey = errors.New("the node key binding names another key than this node's identity key")

// LoadNode loads the node in p: its key (created on a first run) and, when
// the home holds one, the binding that carries an earlier node_id over to
// the key. created reports a first run.
func LoadNode(p paths.Paths) (id *Identity, created bool, err error) {
	id, created, err = LoadOrCreate(p.IdentityKey)
	if err != nil {
		return nil, false, err
	}
	b, ok, err := ReadBinding(p.NodeKeyBinding)
	if err != nil {
		return nil, false, err
	}
	if ok {
		if err := id.WithBinding(b); err != nil {
			return nil, false, fmt.Errorf("%s: %w", p.NodeKeyBinding, err)
		}
	}
	return id, created, nil
}

// WithBinding makes the identity go by b's node_id. b must bind this key
// and carry a valid signature; its lifetime is not checked here (it bounds
// when a directory accepts the binding, not how long the node_id lasts).
func (id *Identity) WithBinding(b wire.NodeKeyBinding) error {
	if _, _, err := wire.VerifyNodeKeyBinding(&b, b.IssuedAt); err != nil {
		return err
	}
	pub, _ := base64.StdEncoding.DecodeString(b.NodePub)
	if !bytes.Equal(pub, id.Public()) {
		return ErrBindingKey
	}
	id.binding = &b
	return nil
}

// Binding returns the identity's binding (ok false for a key-derived
// node_id).
func (id *Identity) Binding() (wire.NodeKeyBinding, bool) {
	if id.binding == nil {
		return wire.NodeKeyBinding{}, false
	}
	return *id.binding, true
}

// DerivedNodeID is the node_id the key alone derives (the mesh's view of
// the node: peers compute it from the authenticated libp2p key).
func (id *Identity) DerivedNodeID() string { return wire.NodeIDFromKey(id.Public()) }

// ReadBinding reads a binding file; ok is false when there is none.
func ReadBinding(path string) (b wire.NodeKeyBinding, ok bool, err error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, false, nil
	}
	if err != nil {
		return b, false, fmt.Errorf("reading the node key binding: %w", err)
	}
	if b, err = ParseBinding(raw); err != nil {
		return b, false, err
	}
	return b, true, nil
}

// ParseBinding decodes a binding file's content.
func ParseBinding(raw []byte) (wire.NodeKeyBinding, error) {
	var b wire.NodeKeyBinding
	if len(raw) > maxBindingFile || json.Unmarshal(raw, &b) != nil {
		return b, errors.New("node-key-binding.json is not a node key binding")
	}
	return b, nil
}

// WriteBinding stores b at path (0600, atomically).
func WriteBinding(path string, b wire.NodeKeyBinding) error {
	raw, _ := json.MarshalIndent(b, "", "  ")
	return paths.WriteFileAtomic(path, append(raw, '\n'), 0o600)
}

// Rotate makes a fresh key for the node id names, signed over by id's key
// (node-key rotation): the new identity keeps id's node_id. The binding is
// valid for ttl from now at a directory that has id's key on record.
func (id *Identity) Rotate(now time.Time, ttl time.Duration) (*Identity, error) {
	next, err := Generate()
	if err != nil {
		return nil, err
	}
	b := wire.SignNodeKeyBinding(id.priv, wire.BindingSignerNode, id.NodeID(), next.Public(), now.Unix(), now.Add(ttl).Unix())
	if err := next.WithBinding(b); err != nil {
		return nil, err
	}
	return next, nil
}
