package mesh

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// P2PExtensionKey is the key under which a node publishes its libp2p
// identity in RegisterRequest.Extensions and finds others' in
// NodeSummary.Extensions (see docs/spec-decisions.md, ## mesh).
const P2PExtensionKey = "meshnode.p2p"

// Limits on a parsed extension: a directory entry is untrusted input.
const (
	maxExtAddrs    = 16
	maxExtAddrLen  = 256
	maxExtRawBytes = 8 << 10
)

// ErrBadP2PExtension reports an unusable meshnode.p2p extension.
var ErrBadP2PExtension = errors.New("mesh: bad meshnode.p2p extension")

// p2pExt is the JSON shape of the meshnode.p2p extension.
type p2pExt struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

// P2PExtension returns the meshnode.p2p extension value for h: its peer ID
// and listen multiaddrs (without /p2p suffix), for the directory
// registration. Link-local addresses are left out; they are never dialable
// from another host.
func P2PExtension(h host.Host) json.RawMessage {
	ext := p2pExt{PeerID: h.ID().String(), Addrs: []string{}}
	for _, a := range h.Addrs() {
		if len(ext.Addrs) == maxExtAddrs {
			break
		}
		if manet.IsIPUnspecified(a) || isLinkLocal(a) {
			continue
		}
		ext.Addrs = append(ext.Addrs, a.String())
	}
	raw, err := json.Marshal(ext)
	if err != nil {
		// Marshalling two strings and a string slice cannot fail.
		return json.RawMessage(`{}`)
	}
	return raw
}

func isLinkLocal(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	return err == nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast())
}

// ParseP2PExtension reads a meshnode.p2p extension published by another
// node. Addresses that do not parse are skipped; at least one must remain.
func ParseP2PExtension(raw json.RawMessage) (peer.AddrInfo, error) {
	if len(raw) == 0 || len(raw) > maxExtRawBytes {
		return peer.AddrInfo{}, fmt.Errorf("%w: size %d", ErrBadP2PExtension, len(raw))
	}
	var ext p2pExt
	if err := json.Unmarshal(raw, &ext); err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: decoding: %w", ErrBadP2PExtension, err)
	}
	id, err := peer.Decode(ext.PeerID)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: peer_id: %w", ErrBadP2PExtension, err)
	}
	info := peer.AddrInfo{ID: id}
	for _, s := range ext.Addrs {
		if len(info.Addrs) == maxExtAddrs {
			break
		}
		a, ok := parseDialAddr(s, id)
		if ok {
			info.Addrs = append(info.Addrs, a)
		}
	}
	if len(info.Addrs) == 0 {
		return peer.AddrInfo{}, fmt.Errorf("%w: no usable addrs", ErrBadP2PExtension)
	}
	return info, nil
}

// parseDialAddr parses one advertised multiaddr, stripping a /p2p suffix
// that names id and refusing one that names another peer.
func parseDialAddr(s string, id peer.ID) (ma.Multiaddr, bool) {
	if s == "" || len(s) > maxExtAddrLen {
		return nil, false
	}
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, false
	}
	transport, p2pID := peer.SplitAddr(a)
	if len(transport) == 0 {
		return nil, false
	}
	if p2pID != "" && p2pID != id {
		return nil, false
	}
	if manet.IsIPUnspecified(transport) {
		return nil, false
	}
	return transport, true
}
