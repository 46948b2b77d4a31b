package mesh

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

func delays(t *testing.T, addrs ...string) map[string]time.Duration {
	t.Helper()
	var in []ma.Multiaddr
	for _, a := range addrs {
		in = append(in, ma.StringCast(a))
	}
	out := map[string]time.Duration{}
	for _, d := range lanTCPDialRanker(in) {
		out[d.Addr.String()] = d.Delay
	}
	if len(out) != len(addrs) {
		t.Fatalf("ranker returned %d addresses for %d: %v", len(out), len(addrs), out)
	}
	return out
}

// TestLANDialRanker: loopback and private peers are dialled over TCP
// first, QUIC a private delay later; public addresses keep go-libp2p's
// ranking (QUIC first), relays stay last.
func TestLANDialRanker(t *testing.T) {
	d := delays(t, "/ip4/127.0.0.1/udp/4001/quic-v1", "/ip4/127.0.0.1/tcp/4001")
	if d["/ip4/127.0.0.1/tcp/4001"] != 0 || d["/ip4/127.0.0.1/udp/4001/quic-v1"] < swarm.PrivateTCPDelay {
		t.Fatalf("loopback: %v, want TCP at 0 and QUIC after it", d)
	}
	d = delays(t, "/ip4/192.168.1.7/udp/4001/quic-v1", "/ip4/192.168.1.7/tcp/4001", "/ip4/192.168.1.7/tcp/4002")
	if d["/ip4/192.168.1.7/tcp/4001"] != 0 || d["/ip4/192.168.1.7/tcp/4002"] == 0 || d["/ip4/192.168.1.7/udp/4001/quic-v1"] == 0 {
		t.Fatalf("private: %v, want one TCP address at once, the rest later", d)
	}
	// Public: exactly the default ranking (QUIC first, TCP delayed).
	pub := []string{"/ip4/203.0.113.5/udp/4001/quic-v1", "/ip4/203.0.113.5/tcp/4001"}
	d = delays(t, pub...)
	var in []ma.Multiaddr
	for _, a := range pub {
		in = append(in, ma.StringCast(a))
	}
	for _, want := range swarm.DefaultDialRanker(in) {
		if d[want.Addr.String()] != want.Delay {
			t.Fatalf("public %s: delay %v, default ranker %v", want.Addr, d[want.Addr.String()], want.Delay)
		}
	}
	if d["/ip4/203.0.113.5/udp/4001/quic-v1"] >= d["/ip4/203.0.113.5/tcp/4001"] {
		t.Fatalf("public: %v, want QUIC first", d)
	}
	// A websocket or relay address on the LAN is not plain TCP.
	for _, a := range []string{"/ip4/127.0.0.1/tcp/4001/ws", "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWGzGkFHkiEtdbtG4aE5GgWN3WE6hGdLDXE2ePnCwD4XbS/p2p-circuit"} {
		if isLANTCP(ma.StringCast(a)) {
			t.Fatalf("%s ranked as plain LAN TCP", a)
		}
	}
}

// TestLANPeersConnectOverTCP: two production hosts on loopback, each
// listening on QUIC and TCP, end up on a TCP connection when one dials
// the other with both addresses known.
func TestLANPeersConnectOverTCP(t *testing.T) {
	addrs := []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	a := newHostWith(t, addrs)
	defer a.Close()
	b := newHostWith(t, addrs)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) == 0 {
		t.Fatal("no connection")
	}
	for _, c := range conns {
		if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_TCP); err != nil {
			t.Fatalf("connection over %s, want TCP on loopback", c.RemoteMultiaddr())
		}
	}
}

func newHostWith(t *testing.T, addrs []string) host.Host {
	t.Helper()
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	h, err := NewHost(context.Background(), priv, HostConfig{ListenAddrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
