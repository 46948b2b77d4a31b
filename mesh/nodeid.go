package mesh

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

// ErrNodeIDMismatch reports a node_id that is not the one derived from the
// peer's key: an advert, a directory entry or a RESPONSE claiming another
// node's identity.
var ErrNodeIDMismatch = errors.New("mesh: node_id does not belong to the peer's key")

// NodeIDOf is the IICP node_id of a peer: wire.NodeIDFromKey over the
// Ed25519 key its peer ID embeds. A node_id and a peer ID come from one key
// (internal/identity), so this is the only node_id a peer can prove; a
// peer ID that does not embed an Ed25519 key has none.
func NodeIDOf(id peer.ID) (string, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return "", fmt.Errorf("%w: no public key in the peer ID", ErrNodeIDMismatch)
	}
	if pub.Type() != pb.KeyType_Ed25519 {
		return "", fmt.Errorf("%w: peer key is not Ed25519", ErrNodeIDMismatch)
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: unreadable peer key", ErrNodeIDMismatch)
	}
	return wire.NodeIDFromKey(ed25519.PublicKey(raw)), nil
}

// checkNodeID reports whether claimed is id's node_id.
func checkNodeID(id peer.ID, claimed string) error {
	want, err := NodeIDOf(id)
	if err != nil {
		return err
	}
	if claimed != want {
		return ErrNodeIDMismatch
	}
	return nil
}

// maxNodeIDMemo bounds nodeIDMemo; past it the memo starts afresh.
const maxNodeIDMemo = 4096

// nodeIDMemo remembers NodeIDOf per peer: a pure function of the peer ID,
// asked on every answer a caller checks.
type nodeIDMemo struct {
	mu sync.Mutex
	m  map[peer.ID]string
}

// of is NodeIDOf(p), remembered.
func (n *nodeIDMemo) of(p peer.ID) (string, error) {
	n.mu.Lock()
	id, ok := n.m[p]
	n.mu.Unlock()
	if ok {
		return id, nil
	}
	id, err := NodeIDOf(p)
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	if n.m == nil || len(n.m) >= maxNodeIDMemo {
		n.m = make(map[peer.ID]string)
	}
	n.m[p] = id
	n.mu.Unlock()
	return id, nil
}
