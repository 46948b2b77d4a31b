package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
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
