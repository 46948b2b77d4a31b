package mesh

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mh "github.com/multiformats/go-multihash"
)

// DHTPrefix is meshnode's Kademlia protocol prefix: the DHT speaks
// /meshnode/kad/1.0.0 and never joins the IPFS Amino DHT.
const DHTPrefix protocol.ID = "/meshnode"

const (
	// maxProvidersPerLookup bounds one provider lookup.
	maxProvidersPerLookup = 20
	// maxConcurrentLookups bounds background provider lookups.
	maxConcurrentLookups = 4
)

// IntentCID is the DHT key under which providers of intent are recorded:
// a CIDv1 (raw codec) of the SHA2-256 multihash of the URN bytes.
func IntentCID(intent string) (cid.Cid, error) {
	h, err := mh.Sum([]byte(intent), mh.SHA2_256, -1)
	if err != nil {
		return cid.Undef, fmt.Errorf("hashing intent: %w", err)
	}
	return cid.NewCidV1(cid.Raw, h), nil
}

// newDHT builds the DHT under our prefix. Bootstrap peers come from
// bootstrap, which the mesh fills from configuration and the directory;
// kad-dht only falls back to them when its routing table is empty.
func newDHT(h host.Host, mode DHTMode, bootstrap func() []peer.AddrInfo) (*dht.IpfsDHT, error) {
	m := dht.ModeServer
	switch mode {
	case DHTClient:
		m = dht.ModeClient
	case DHTAuto:
		m = dht.ModeAuto
	}
	d, err := dht.New(h,
		dht.ProtocolPrefix(DHTPrefix),
		dht.Mode(m),
		dht.BootstrapPeersFunc(bootstrap),
		// The mesh stores no values, only provider records.
		dht.DisableValues(),
	)
	if err != nil {
		return nil, fmt.Errorf("starting dht: %w", err)
	}
	return d, nil
}

// provideAll announces this node as provider of each served intent. It
// returns the first error; the caller retries later.
func (m *Mesh) provideAll(ctx context.Context) error {
	for _, c := range m.cfg.Capabilities {
		key, err := IntentCID(c.Intent)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, provideTimeout)
		err = m.dht.Provide(pctx, key, true)
		cancel()
		if err != nil {
			return fmt.Errorf("providing %s: %w", c.Intent, err)
		}
	}
	return nil
}

// provideTimeout bounds one provide (a DHT walk plus ADD_PROVIDER RPCs).
const provideTimeout = 30 * time.Second

// provideLoop provides every served intent now and every
// ReprovideInterval, retrying sooner after a failure.
func (m *Mesh) provideLoop(ctx context.Context) {
	if len(m.cfg.Capabilities) == 0 {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := m.cfg.ReprovideInterval
		if err := m.provideAll(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			m.log.Debug("provide failed; retrying", "error", err, "in", m.cfg.ProvideRetry)
			next = m.cfg.ProvideRetry
		} else {
			m.provided.Store(true)
		}
		t.Reset(next)
	}
}

// findProviders looks intent up in the DHT and records the providers in
// the peer table, bounded by DHTFindTimeout.
func (m *Mesh) findProviders(ctx context.Context, intent string) int {
	key, err := IntentCID(intent)
	if err != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.DHTFindTimeout)
	defer cancel()
	n := 0
	for ai := range m.dht.FindProvidersAsync(ctx, key, maxProvidersPerLookup) {
		if ai.ID == m.h.ID() || ai.ID == "" {
			continue
		}
		if len(ai.Addrs) > 0 {
			m.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, m.cfg.PeerTTL)
		}
		m.table.addProvider(ai.ID, intent, m.now())
		n++
	}
	return n
}

// findProvidersAsync runs findProviders in the background, at most one
// lookup per intent at a time and none while the mesh is closing.
func (m *Mesh) findProvidersAsync(intent string) {
	m.lookupMu.Lock()
	if m.lookups[intent] || len(m.lookups) >= maxConcurrentLookups {
		m.lookupMu.Unlock()
		return
	}
	m.lookups[intent] = true
	m.lookupMu.Unlock()
	if !m.track() {
		m.endLookup(intent)
		return
	}
	go func() {
		defer m.wg.Done()
		defer m.endLookup(intent)
		m.findProviders(m.ctx, intent)
	}()
}

func (m *Mesh) endLookup(intent string) {
	m.lookupMu.Lock()
	delete(m.lookups, intent)
	m.lookupMu.Unlock()
}
