package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/wire"
)

const pemType = "PRIVATE KEY"

// Identity is the node's key pair and the IDs derived from it.
type Identity struct {
	priv ed25519.PrivateKey
	// binding, when set, carries node_id over from an earlier key
	// (rotation or operator recovery); see binding.go.
	binding *wire.NodeKeyBinding
}

// Generate makes a fresh identity from crypto/rand.
func Generate() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating ed25519 key: %w", err)
	}
	return &Identity{priv: priv}, nil
}

// FromPrivate wraps an existing 64-byte Ed25519 private key.
func FromPrivate(priv ed25519.PrivateKey) (*Identity, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	return &Identity{priv: append(ed25519.PrivateKey(nil), priv...)}, nil
}

// LoadOrCreate loads the key at path, or creates it (0600, atomically) when
// the file does not exist. created reports a first run. A key file other
// users can read is refused, like ssh does.
func LoadOrCreate(path string) (id *Identity, created bool, err error) {
	id, err = Load(path)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	id, err = Generate()
	if err != nil {
		return nil, false, err
	}
	if err := id.Save(path); err != nil {
		return nil, false, err
	}
	return id, true, nil
}

// Load reads the PEM PKCS#8 key at path.
func Load(path string) (*Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading identity key: %w", err)
	}
	if err := paths.CheckPrivate(path); err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	return Parse(data)
}

// Parse decodes a key file's content (PEM PKCS#8 Ed25519), as Load does
// after reading it: the identity bundle checks a key before writing it.
func Parse(data []byte) (*Identity, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, errors.New("identity key: not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity key: parsing PKCS#8: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity key: %T is not an Ed25519 key", k)
	}
	return &Identity{priv: priv}, nil
}

// Save writes the key to path as PEM PKCS#8 with mode 0600.
func (id *Identity) Save(path string) error {
	der, err := x509.MarshalPKCS8PrivateKey(id.priv)
	if err != nil {
		return fmt.Errorf("encoding identity key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	if err := paths.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("writing identity key: %w", err)
	}
	return nil
}

// Private returns the 64-byte stdlib key (seed || public key). It is also the
// input libp2p's crypto.UnmarshalEd25519PrivateKey expects.
func (id *Identity) Private() ed25519.PrivateKey { return id.priv }

// Public returns the Ed25519 public key.
func (id *Identity) Public() ed25519.PublicKey { return id.priv.Public().(ed25519.PublicKey) }

// Libp2pKey returns the key as a libp2p private key for the mesh host.
func (id *Identity) Libp2pKey() (crypto.PrivKey, error) {
	return crypto.UnmarshalEd25519PrivateKey(id.priv)
}

// PeerID is the libp2p peer ID of the key.
func (id *Identity) PeerID() (peer.ID, error) {
	k, err := id.Libp2pKey()
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(k)
}

// NodeID is the IICP node_id derived from the public key (wire.NodeIDFromKey).
// It is stable for the key's lifetime, so a restarted node re-registers
// under the same node_id, and a peer that authenticated the key (the libp2p
// peer ID) can recompute it.
//
// A node whose key was rotated or recovered keeps its earlier node_id: its
// binding (WithBinding) names it, and NodeID returns that instead.
func (id *Identity) NodeID() string {
	if id.binding != nil {
		return id.binding.NodeID
	}
	return wire.NodeIDFromKey(id.Public())
}
