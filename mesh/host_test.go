package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestNewHostRefusesTakenPort: with port reuse off, a second host on the
// same TCP or UDP (QUIC) port fails with ErrListen instead of sharing the
// port (and receiving the first node's dials) or dropping QUIC silently.
func TestNewHostRefusesTakenPort(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			addr := "/ip4/127.0.0.1/tcp/0"
			if proto == "udp" {
				addr = "/ip4/127.0.0.1/udp/0/quic-v1"
			}
			first := newKeyHost(t, addr)
			defer first.Close()
			bound := first.Network().ListenAddresses()[0].String()
			// The second asks for both transports; only one port is taken.
			other := "/ip4/127.0.0.1/tcp/0"
			if proto == "tcp" {
				other = "/ip4/127.0.0.1/udp/0/quic-v1"
			}
			priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
			h, err := NewHost(context.Background(), priv, HostConfig{ListenAddrs: []string{other, bound}})
			if err == nil {
				h.Close()
				t.Fatalf("second host bound %s again", bound)
			}
			if !errors.Is(err, ErrListen) || !strings.Contains(err.Error(), "in use") {
				t.Fatalf("error %v, want ErrListen naming the port in use", err)
			}
		})
	}
}

func TestNewHostBadListenAddr(t *testing.T) {
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	if _, err := NewHost(context.Background(), priv, HostConfig{ListenAddrs: []string{"127.0.0.1:9"}}); err == nil ||
		!strings.Contains(err.Error(), "not a multiaddr") {
		t.Fatalf("bad listen address: %v", err)
	}
}

func newKeyHost(t *testing.T, addr string) host.Host {
	t.Helper()
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	h, err := NewHost(context.Background(), priv, HostConfig{ListenAddrs: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestAdvertCarriesBackendAvailability: Config.Available false makes the
// node advertise available=false, Readvertise spreads a flip at once, and
// peers then stop counting it available.
func TestAdvertCarriesBackendAvailability(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	cfgA := testConfig(nodeName(0), true)
	cfgA.Available = up.Load
	a := startNode(t, newTestHost(t, false), cfgA)
	b := startNode(t, newTestHost(t, false), testConfig(nodeName(1), false))
	b.m.AddBootstrapPeers([]peer.AddrInfo{{ID: a.h.ID(), Addrs: a.h.Addrs()}})
	seen := func(avail bool) func() bool {
		return func() bool {
			for _, p := range b.m.Peers() {
				if p.PeerID == a.h.ID() && !p.FromDHT {
					return p.Available == avail
				}
			}
			return false
		}
	}
	waitFor(t, 15*time.Second, "advert available", seen(true))
	up.Store(false)
	a.m.Readvertise()
	waitFor(t, 15*time.Second, "advert unavailable", seen(false))
	up.Store(true)
	a.m.Readvertise()
	waitFor(t, 15*time.Second, "advert available again", seen(true))
}
