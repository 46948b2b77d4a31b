package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/mesh"
)

// setupMesh builds the libp2p host from the node identity (the same key
// that names the node to directories) and the mesh on top of it.
func (d *daemon) setupMesh(ctx context.Context, reg *prometheus.Registry) error {
	priv, err := d.id.Libp2pKey()
	if err != nil {
		return fmt.Errorf("identity key for libp2p: %w", err)
	}
	h, err := mesh.NewHost(ctx, priv, mesh.HostConfig{
		ListenAddrs: d.cfg.Mesh.Listen,
		ConnLow:     d.cfg.Mesh.ConnsLow,
		ConnHigh:    d.cfg.Mesh.ConnsHigh,
		// Port mapping and relays only make sense off loopback.
		NAT:           !d.cfg.Node.Dev,
		Registerer:    reg,
		MaxConcurrent: d.cfg.Node.MaxConcurrent,
	})
	if err != nil {
		if errors.Is(err, mesh.ErrListen) {
			return fmt.Errorf("%w; set --p2p or mesh.listen (port 0 picks a free one)", err)
		}
		return fmt.Errorf("mesh host: %w", err)
	}
	d.host = h
	boot, err := parseBootstrap(d.cfg.Mesh.Bootstrap)
	if err != nil {
		return err
	}
	dhtMode := mesh.DHTAuto
	if d.cfg.Node.Dev {
		dhtMode = mesh.DHTServer // loopback peers can always dial each other
	}
	d.mesh, err = mesh.New(h, mesh.Config{
		// The mesh names a node by its key (peers derive node_id from the
		// authenticated libp2p key), so a rotated or recovered node is on
		// the mesh under its key's node_id (docs/spec-decisions.md).
		NodeID:         d.id.DerivedNodeID(),
		Region:         d.cfg.Node.Region,
		Capabilities:   d.be.router.Capabilities(),
		MaxConcurrent:  d.cfg.Node.MaxConcurrent,
		AdvertInterval: d.cfg.Mesh.AdvertInterval.D(),
		Load:           d.meshLoad,
		Available:      d.backendUp.Load,
		DHTMode:        dhtMode,
		BootstrapPeers: boot,
		MDNS:           d.cfg.Mesh.MDNS,
		Logger:         d.o.Logs.For("mesh"),
	}, d.engine)
	if err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	// Attached now, with the other binds, before anything is announced.
	if err := d.mesh.Start(); err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	d.applyOperator()
	// meshnode_mesh_events_total: advert rejections (node_id_mismatch…)
	// and forged responses show on /metrics, not only in `meshnode status`.
	if err := reg.Register(d.mesh.Collector()); err != nil {
		return fmt.Errorf("mesh metrics: %w", err)
	}
	return nil
}

func (d *daemon) meshLoad() (float64, int) {
	s := d.engine.Stats()
	return s.Load, s.ActiveJobs
}

// parseBootstrap reads mesh.bootstrap: full multiaddrs ending in /p2p/<id>.
func parseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("mesh.bootstrap %q: %w", s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return nil, fmt.Errorf("mesh.bootstrap %q needs a /p2p/<peer id> suffix: %w", s, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

// p2pAddrs lists the host's dialable addresses with the /p2p suffix.
func (d *daemon) p2pAddrs() []string {
	if d.host == nil {
		return nil
	}
	var out []string
	for _, a := range d.host.Addrs() {
		out = append(out, a.String()+"/p2p/"+d.host.ID().String())
	}
	return out
}
