package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

// DHTMode selects whether this node answers DHT queries.
type DHTMode string

const (
	// DHTServer answers queries and stores provider records. Publicly
	// reachable nodes and every node in loopback tests use it.
	DHTServer DHTMode = "server"
	// DHTClient only queries: right for nodes behind NAT that others cannot dial.
	DHTClient DHTMode = "client"
	// DHTAuto lets kad-dht switch on observed reachability (AutoNAT).
	DHTAuto DHTMode = "auto"
)

// Defaults, listed once. Every zero field of Config takes its value from here.
const (
	// DefaultAdvertInterval trades gossip traffic for freshness of the peer
	// table; it is well under DefaultPeerTTL so one lost advert never expires a peer.
	DefaultAdvertInterval = 20 * time.Second
	// DefaultMinAdvertGap bounds how often load changes may trigger adverts.
	DefaultMinAdvertGap = 1 * time.Second
	// DefaultLoadPollInterval is how often the load source is sampled.
	DefaultLoadPollInterval = 1 * time.Second
	// DefaultLoadChangeThreshold is the load delta that triggers an immediate advert.
	DefaultLoadChangeThreshold = 0.2
	// DefaultPeerTTL is the peer cache TTL of iicp-semantics.md §9 (90 s).
	DefaultPeerTTL = 90 * time.Second
	// DefaultMaxClockSkew is how far in the future an advert timestamp may be.
	DefaultMaxClockSkew = 2 * time.Minute
	// DefaultAdvertMaxBytes caps one encoded advert; a node with many models
	// fits comfortably, a flood does not.
	DefaultAdvertMaxBytes = 8 << 10
	// DefaultAdvertRate and DefaultAdvertBurst bound adverts accepted per
	// origin peer (tokens per second, bucket size). Honest nodes send at most
	// one per MinAdvertGap.
	DefaultAdvertRate  = 2.0
	DefaultAdvertBurst = 10
	// DefaultReprovideInterval re-announces provider records; kad-dht keeps
	// them 48 h, so hourly is ample yet cheap.
	DefaultReprovideInterval = 1 * time.Hour
	// DefaultProvideRetry is the pause after a failed provide (empty routing table).
	DefaultProvideRetry = 10 * time.Second
	// DefaultRTTInterval is how often the RTT of known peers is re-measured.
	DefaultRTTInterval = 2 * time.Minute
	// DefaultRTTTimeout bounds one RTT probe.
	DefaultRTTTimeout = 5 * time.Second
	// DefaultDHTFindTimeout bounds a provider lookup made while picking a peer.
	DefaultDHTFindTimeout = 3 * time.Second
	// DefaultMaxCallBytes is the largest CALL frame accepted (iicp-framing.md §2:
	// 1 MiB hard limit for task invocations).
	DefaultMaxCallBytes = 1 << 20
	// DefaultMaxResponseBytes is the largest RESPONSE frame accepted; well under
	// the 16 MiB frame maximum of iicp-framing.md §2 to bound client memory.
	DefaultMaxResponseBytes = 8 << 20
	// DefaultRetryAttempts, DefaultRetryBase: iicp-semantics.md §6.1.
	DefaultRetryAttempts = 3
	DefaultRetryBase     = 200 * time.Millisecond
	// DefaultBreakerThreshold, DefaultBreakerOpenFor: iicp-semantics.md §7.1.
	DefaultBreakerThreshold = 5
	DefaultBreakerOpenFor   = 30 * time.Second
	// DefaultDialTimeout bounds dialling a peer for one call attempt, so a
	// dead peer costs one attempt, not the whole budget.
	DefaultDialTimeout = 5 * time.Second
	// DefaultBootstrapDialTimeout bounds one dial to a bootstrap peer.
	DefaultBootstrapDialTimeout = 10 * time.Second
	// DefaultMaxBootstrapPeers caps how many bootstrap peers are remembered.
	DefaultMaxBootstrapPeers = 64
)

// Config is what the mesh needs to know about this node. The composition
// root fills it from the node configuration.
type Config struct {
	// NodeID is this node's IICP node_id. It must be the node_id derived
	// from the host's key (NodeIDOf), since peers reject any other; empty
	// means New derives it.
	NodeID string
	// Region is the node's region code, advertised and used for region_match.
	Region string
	// Capabilities are the intents and models this node serves; empty for a
	// pure consumer, which then neither advertises nor provides.
	Capabilities []wire.Capability
	// MaxConcurrent is the node's declared limits.max_concurrent.
	MaxConcurrent int
	// Load reports current load in [0,1] and active jobs; nil means the mesh
	// counts only the tasks it serves itself.
	Load func() (load float64, activeJobs int)
	// Available reports whether the node can serve now (its backend
	// answers); nil means always. An unavailable node advertises
	// available=false, and a change is advertised at once (Mesh.Readvertise).
	Available func() bool

	// DHTMode defaults to DHTServer.
	DHTMode DHTMode
	// BootstrapPeers are static bootstrap peers from configuration. The IPFS
	// bootstrap peers are never used.
	BootstrapPeers []peer.AddrInfo
	// MDNS announces the node on the LAN and dials the meshnode peers found
	// there (mdns.go); MDNSService is the service name, default
	// DefaultMDNSService.
	MDNS        bool
	MDNSService string

	AdvertInterval      time.Duration
	MinAdvertGap        time.Duration
	LoadPollInterval    time.Duration
	LoadChangeThreshold float64
	PeerTTL             time.Duration
	MaxClockSkew        time.Duration
	AdvertMaxBytes      int
	AdvertRate          float64
	AdvertBurst         int
	ReprovideInterval   time.Duration
	ProvideRetry        time.Duration
	RTTInterval         time.Duration
	RTTTimeout          time.Duration
	DHTFindTimeout      time.Duration
	DialTimeout         time.Duration
	MaxCallBytes        int
	MaxResponseBytes    int
	RetryAttempts       int
	RetryBase           time.Duration
	BreakerThreshold    int
	BreakerOpenFor      time.Duration

	// Logger receives the mesh's logs; nil discards them (only the composition root logs by default).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setInt := func(i *int, def int) {
		if *i == 0 {
			*i = def
		}
	}
	if c.DHTMode == "" {
		c.DHTMode = DHTServer
	}
	if c.MDNSService == "" {
		c.MDNSService = DefaultMDNSService
	}
	setDur(&c.AdvertInterval, DefaultAdvertInterval)
	setDur(&c.MinAdvertGap, DefaultMinAdvertGap)
	setDur(&c.LoadPollInterval, DefaultLoadPollInterval)
	setDur(&c.PeerTTL, DefaultPeerTTL)
	setDur(&c.MaxClockSkew, DefaultMaxClockSkew)
	setDur(&c.ReprovideInterval, DefaultReprovideInterval)
	setDur(&c.ProvideRetry, DefaultProvideRetry)
	setDur(&c.RTTInterval, DefaultRTTInterval)
	setDur(&c.RTTTimeout, DefaultRTTTimeout)
	setDur(&c.DHTFindTimeout, DefaultDHTFindTimeout)
	setDur(&c.DialTimeout, DefaultDialTimeout)
	setDur(&c.RetryBase, DefaultRetryBase)
	setDur(&c.BreakerOpenFor, DefaultBreakerOpenFor)
	setInt(&c.AdvertMaxBytes, DefaultAdvertMaxBytes)
	setInt(&c.AdvertBurst, DefaultAdvertBurst)
	setInt(&c.MaxCallBytes, DefaultMaxCallBytes)
	setInt(&c.MaxResponseBytes, DefaultMaxResponseBytes)
	setInt(&c.RetryAttempts, DefaultRetryAttempts)
	setInt(&c.BreakerThreshold, DefaultBreakerThreshold)
	if c.LoadChangeThreshold == 0 {
		c.LoadChangeThreshold = DefaultLoadChangeThreshold
	}
	if c.AdvertRate == 0 {
		c.AdvertRate = DefaultAdvertRate
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// errConfig marks configuration errors from New.
var errConfig = errors.New("mesh: invalid config")

func (c *Config) validate() error {
	switch c.DHTMode {
	case DHTServer, DHTClient, DHTAuto:
	default:
		return fmt.Errorf("%w: dht mode %q", errConfig, c.DHTMode)
	}
	if c.AdvertInterval < c.MinAdvertGap {
		return fmt.Errorf("%w: advert interval %v below min advert gap %v", errConfig, c.AdvertInterval, c.MinAdvertGap)
	}
	if c.PeerTTL <= c.AdvertInterval {
		return fmt.Errorf("%w: peer ttl %v must exceed advert interval %v", errConfig, c.PeerTTL, c.AdvertInterval)
	}
	if c.AdvertMaxBytes < 256 || c.AdvertMaxBytes > maxPubsubMessage/2 {
		return fmt.Errorf("%w: advert max bytes %d out of range", errConfig, c.AdvertMaxBytes)
	}
	if c.MaxCallBytes < 0 || c.MaxCallBytes > maxFrameBytes || c.MaxResponseBytes < 0 || c.MaxResponseBytes > maxFrameBytes {
		return fmt.Errorf("%w: frame caps above %d bytes", errConfig, maxFrameBytes)
	}
	if c.RetryAttempts < 1 || c.BreakerThreshold < 1 || c.AdvertBurst < 1 || c.AdvertRate <= 0 {
		return fmt.Errorf("%w: attempts, breaker threshold, advert burst and rate must be positive", errConfig)
	}
	if c.LoadChangeThreshold < 0 || c.LoadChangeThreshold > 1 {
		return fmt.Errorf("%w: load change threshold %v outside [0,1]", errConfig, c.LoadChangeThreshold)
	}
	for _, cp := range c.Capabilities {
		if !wire.ValidIntent(cp.Intent) {
			return fmt.Errorf("%w: capability intent %q", errConfig, cp.Intent)
		}
	}
	return nil
}

// maxFrameBytes is the IICP frame maximum (iicp-framing.md §2, 16 MiB).
const maxFrameBytes = 16 << 20

// maxPubsubMessage is the pubsub RPC size limit: several adverts may share
// one RPC, so it is a multiple of the largest advert.
const maxPubsubMessage = 256 << 10
