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
// registration. Only addresses another host can dial are listed: never
// unspecified or link-local ones, and loopback ones only from a node
// that listens on loopback alone (a development mesh on one machine).
func P2PExtension(h host.Host) json.RawMessage {
	ext := p2pExt{PeerID: h.ID().String(), Addrs: []string{}}
	loopback := listensOnLoopback(h)
	for _, a := range h.Addrs() {
		if len(ext.Addrs) == maxExtAddrs {
			break
		}
		if publishable(a, loopback) {
			ext.Addrs = append(ext.Addrs, a.String())
		}
	}
	raw, err := json.Marshal(ext)
	if err != nil {
		// Marshalling two strings and a string slice cannot fail.
		return json.RawMessage(`{}`)
	}
	return raw
}

// listensOnLoopback reports whether every listen address of h is a
// loopback address: the node is a development node, and so are its peers.
func listensOnLoopback(h host.Host) bool {
	addrs := h.Network().ListenAddresses()
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			return false
		}
	}
	return len(addrs) > 0
}

// publishable reports whether a may be offered to, or dialled for, another
// host. Link-local addresses (and any with an IPv6 zone, which only names
// an interface of the host that wrote it) route on one link at best and
// never from a directory entry; unspecified ones name no host; loopback
// ones name the dialler itself unless the whole mesh is on this machine.
func publishable(a ma.Multiaddr, loopback bool) bool {
	if manet.IsIPUnspecified(a) || isLinkLocal(a) {
		return false
	}
	return loopback || !manet.IsIPLoopback(a)
}

func isLinkLocal(a ma.Multiaddr) bool {
	if _, err := a.ValueForProtocol(ma.P_IP6ZONE); err == nil {
		return true
	}
	if manet.IsIP6LinkLocal(a) {
		return true
	}
	ip, err := manet.ToIP(a)
	return err == nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast())
}

// ParseP2PExtension reads the meshnode.p2p extension a directory lists for
// nodeID. The directory's word is a hint: the extension's peer ID must be
// the key nodeID derives from (NodeIDOf), else ErrNodeIDMismatch, so a
// registration cannot point another node's node_id at the registrant's
// peer. Addresses that do not parse, name another peer, or can never be
// dialled from another host (unspecified, link-local) are skipped; at
// least one must remain. Loopback addresses are kept because only the
// local node can tell whether they are usable: Mesh.AddBootstrapPeers
// drops them unless the local host itself listens on loopback alone.
func ParseP2PExtension(nodeID string, raw json.RawMessage) (peer.AddrInfo, error) {
	info, err := parseP2PExtension(raw)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	if err := checkNodeID(info.ID, nodeID); err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: directory entry %s: %w", ErrBadP2PExtension, nodeID, err)
	}
	return info, nil
}

// ParseDirectoryPeer is ParseP2PExtension counting, in Stats, entries
// whose node_id and peer ID disagree ("directory_peer_node_id_mismatch").
func (m *Mesh) ParseDirectoryPeer(nodeID string, raw json.RawMessage) (peer.AddrInfo, error) {
	info, err := ParseP2PExtension(nodeID, raw)
	if errors.Is(err, ErrNodeIDMismatch) {
		m.stats.count("directory_peer_node_id_mismatch")
	}
	return info, err
}

func parseP2PExtension(raw json.RawMessage) (peer.AddrInfo, error) {
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
		a, ok := parseDialAddr(s, id, true)
		if ok {
			info.Addrs = append(info.Addrs, a)
		}
	}
	if len(info.Addrs) == 0 {
		return peer.AddrInfo{}, fmt.Errorf("%w: no usable addrs", ErrBadP2PExtension)
	}
	return info, nil
}

// parseDialAddr parses one multiaddr another node advertised, stripping a
// /p2p suffix that names id and refusing one that names another peer, and
// refusing addresses this host cannot dial (see publishable; loopback ones
// only with loopback set).
func parseDialAddr(s string, id peer.ID, loopback bool) (ma.Multiaddr, bool) {
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
	if !publishable(transport, loopback) {
		return nil, false
	}
	return transport, true
}

// dialable keeps the addresses of infos this host can dial and drops
// peers left with none.
func dialable(infos []peer.AddrInfo, loopback bool) []peer.AddrInfo {
	out := make([]peer.AddrInfo, 0, len(infos))
	for _, ai := range infos {
		kept := peer.AddrInfo{ID: ai.ID}
		for _, a := range ai.Addrs {
			if publishable(a, loopback) {
				kept.Addrs = append(kept.Addrs, a)
			}
		}
		if len(kept.Addrs) > 0 {
			out = append(out, kept)
		}
	}
	return out
}
