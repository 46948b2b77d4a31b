package mesh

import (
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// lanTCPDialRanker schedules the dials to one peer. A peer on the same
// machine or LAN (loopback or private address) is dialled over plain TCP
// first and over QUIC a private-network delay later; every other address
// is ranked as go-libp2p's DefaultDialRanker ranks it (QUIC first).
//
// Why (docs/spec-decisions.md, "Mesh transport on the LAN"): a task call
// on a reused stream round-trips in ~32 µs over TCP and ~54 µs over QUIC
// on loopback here, because QUIC's packets cross user-space goroutines on
// both ends while TCP's stay in the kernel; c=1 mesh calls over TCP add
// less than the HTTP bridge, over QUIC they did not. On the internet QUIC
// keeps its advantages (one round trip to connect, hole punching), and
// there the default ranking applies unchanged. Inbound connections are
// whatever the other side chose; this only orders our own dials.
func lanTCPDialRanker(addrs []ma.Multiaddr) []network.AddrDelay {
	var lan, rest []ma.Multiaddr
	for _, a := range addrs {
		if isLANTCP(a) {
			lan = append(lan, a)
		} else {
			rest = append(rest, a)
		}
	}
	ranked := swarm.DefaultDialRanker(rest)
	if len(lan) == 0 {
		return ranked
	}
	out := make([]network.AddrDelay, 0, len(addrs))
	for i, a := range lan {
		d := network.AddrDelay{Addr: a}
		if i > 0 {
			d.Delay = swarm.PrivateTCPDelay
		}
		out = append(out, d)
	}
	for _, d := range ranked {
		if isLANAddr(d.Addr) {
			// QUIC and anything else on the LAN waits for the TCP dial.
			d.Delay += swarm.PrivateTCPDelay
		}
		out = append(out, d)
	}
	return out
}

// isLANAddr reports a loopback or private-network IP address.
func isLANAddr(a ma.Multiaddr) bool {
	return manet.IsIPLoopback(a) || manet.IsPrivateAddr(a)
}

// isLANTCP reports a plain /ip4|ip6/…/tcp/… address (optionally with
// its /p2p/ suffix) on loopback or a private network: no websocket, no
// relay circuit.
func isLANTCP(a ma.Multiaddr) bool {
	if len(a) < 2 || len(a) > 3 {
		return false
	}
	if c := a[0].Code(); c != ma.P_IP4 && c != ma.P_IP6 {
		return false
	}
	if a[1].Code() != ma.P_TCP || (len(a) == 3 && a[2].Code() != ma.P_P2P) {
		return false
	}
	return isLANAddr(a)
}
