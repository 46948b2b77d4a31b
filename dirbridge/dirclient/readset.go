package dirclient

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// ReadSet spreads a federation's reads over its directories: discover goes
// to the nearest healthy replica (lowest measured round-trip time among
// those answering /iicp/health), the seed when no replica is healthy, and
// an unhealthy directory only as a last resort; a read that fails on one
// directory is retried on the next. Writes (register, heartbeat,
// deregister, consumer tokens) stay with the seed's Client: replicas hold
// no node credentials. Replicas come from configuration and, unless
// turned off, from the seed's /.well-known/iicp-replicas.json; the answers
// of a replica listed there must carry its DID-key signature (DIR-FED-20).
type ReadSet struct {
	cfg ReadSetConfig
	log *slog.Logger

	mu   sync.Mutex
	dirs []*readDir // dirs[0] is the seed
}

// ReadSetConfig configures a ReadSet.
type ReadSetConfig struct {
	// Seed is the directory the node writes to (registers with).
	Seed *Client
	// Replicas are read-only directories of the same federation the
	// operator configured; they are trusted by URL like the seed.
	Replicas []string
	// WellKnown learns further replicas from the seed's registry.
	WellKnown bool
	// ProbeInterval is how often every directory's health and RTT are
	// measured and the registry re-read (default 30 s).
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe (default 3 s).
	ProbeTimeout time.Duration
	Logger       *slog.Logger
}

// Read roles and sources (ReadStatus).
const (
	RoleSeed          = "seed"
	RoleReplica       = "replica"
	SourceConfigured  = "configured"
	SourceWellKnown   = "well-known"
	defaultProbeEvery = 30 * time.Second
	defaultProbeLimit = 3 * time.Second
	rttSmoothing      = 0.3 // weight of a new RTT sample
)

// ReadStatus is one directory of a ReadSet as `meshnode status` shows it.
type ReadStatus struct {
	URL     string `json:"url"`
	Role    string `json:"role"`
	Source  string `json:"source"`
	Healthy bool   `json:"healthy"`
	// Probed is false until the first health probe finished.
	Probed bool    `json:"probed"`
	RTTMs  float64 `json:"rtt_ms,omitempty"`
	// Serving is true for the directory reads go to now.
	Serving   bool   `json:"serving_reads"`
	Reads     int64  `json:"reads"`
	Failures  int64  `json:"read_failures"`
	LastError string `json:"last_error,omitempty"`
	// Signed is true for a registry replica whose answers must carry its
	// DID-key signature.
	Signed bool `json:"signed,omitempty"`
}

type readDir struct {
	c      *Client
	role   string
	source string
	signed bool
	st     ReadStatus
	rtt    time.Duration
}

// NewReadSet builds the set around cfg.Seed with the configured replicas.
func NewReadSet(cfg ReadSetConfig) (*ReadSet, error) {
	if cfg.Seed == nil {
		return nil, errors.New("client: read set without a seed")
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = defaultProbeEvery
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = defaultProbeLimit
	}
	rs := &ReadSet{cfg: cfg, log: cfg.Logger}
	if rs.log == nil {
		rs.log = slog.New(slog.DiscardHandler)
	}
	rs.dirs = []*readDir{{c: cfg.Seed, role: RoleSeed, source: SourceConfigured}}
	for _, u := range cfg.Replicas {
		c, err := cfg.Seed.sibling(u)
		if err != nil {
			return nil, err
		}
		if !rs.known(c.URL()) {
			rs.dirs = append(rs.dirs, &readDir{c: c, role: RoleReplica, source: SourceConfigured})
		}
	}
	return rs, nil
}

// sibling is a client for another directory with c's HTTP client and
// User-Agent.
func (c *Client) sibling(u string) (*Client, error) {
	return New(u, WithHTTPClient(c.hc), WithUserAgent(c.userAgent))
}

func (rs *ReadSet) known(u string) bool {
	return slices.ContainsFunc(rs.dirs, func(d *readDir) bool { return d.c.URL() == u })
}

// Seed is the write directory.
func (rs *ReadSet) Seed() *Client { return rs.cfg.Seed }

// URL is the seed's URL (the set's identity).
func (rs *ReadSet) URL() string { return rs.cfg.Seed.URL() }

// Discover asks the best directory first and fails over in order. An
// answer the directory refused for the query itself (4xx) is final: every
// directory of the federation would refuse it alike.
func (rs *ReadSet) Discover(ctx context.Context, q Query) (*wire.NodeList, error) {
	var errs []error
	for _, ch := range rs.choices() {
		nl, err := ch.c.Discover(ctx, q)
		rs.record(ch.d, err)
		if err == nil {
			return nl, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || (errors.Is(err, ErrRejected) && !errors.Is(err, ErrReplicaSignature)) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// order is the read preference: healthy replicas by RTT, the seed, then
// the rest (not yet probed or failing) in configuration order.
func (rs *ReadSet) order() []*readDir {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var healthy, rest []*readDir
	for _, d := range rs.dirs[1:] {
		if d.st.Healthy {
			healthy = append(healthy, d)
		} else {
			rest = append(rest, d)
		}
	}
	slices.SortStableFunc(healthy, func(a, b *readDir) int { return cmp.Compare(a.rtt, b.rtt) })
	seed := rs.dirs[0]
	if seed.st.Healthy || !seed.st.Probed {
		healthy = append(healthy, seed)
	} else {
		rest = append(rest, seed)
	}
	return append(healthy, rest...)
}

// readChoice is a directory with the client read under the lock (a
// configured replica's client is replaced once the registry lists it).
type readChoice struct {
	d *readDir
	c *Client
}

// choices is order with each directory's current client.
func (rs *ReadSet) choices() []readChoice {
	ds := rs.order()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]readChoice, len(ds))
	for i, d := range ds {
		out[i] = readChoice{d: d, c: d.c}
	}
	return out
}

// record notes a read's outcome; a failing directory is unhealthy until a
// probe finds it answering again.
func (rs *ReadSet) record(d *readDir, err error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if err == nil {
		d.st.Reads++
		return
	}
	d.st.Failures++
	d.st.LastError = err.Error()
	if errors.Is(err, ErrReplicaSignature) {
		rs.log.Warn("replica answer failed its signature check; not using it", "code", "IICP-SEC-REPLICA-01", "directory", d.c.URL())
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrReplicaSignature) {
		d.st.Healthy, d.st.Probed = false, true
	}
}

// Status lists every directory of the set, the serving one marked.
func (rs *ReadSet) Status() []ReadStatus {
	first := rs.order()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]ReadStatus, 0, len(rs.dirs))
	for _, d := range rs.dirs {
		s := d.st
		s.URL, s.Role, s.Source, s.Signed = d.c.URL(), d.role, d.source, d.signed
		s.RTTMs = float64(d.rtt.Microseconds()) / 1e3
		s.Serving = len(first) > 0 && first[0] == d
		out = append(out, s)
	}
	return out
}

// Run probes every directory now and then every ProbeInterval, re-reading
// the seed's replica registry each time, until ctx ends.
func (rs *ReadSet) Run(ctx context.Context) error {
	t := time.NewTicker(rs.cfg.ProbeInterval)
	defer t.Stop()
	for {
		if rs.cfg.WellKnown {
			rs.refreshRegistry(ctx)
		}
		rs.probeAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Prime reads the registry (when WellKnown) and probes every directory
// once, for a short-lived client such as one CLI call; a daemon runs Run.
func (rs *ReadSet) Prime(ctx context.Context) {
	if rs.cfg.WellKnown {
		rs.refreshRegistry(ctx)
	}
	rs.probeAll(ctx)
}

// refreshRegistry adds the replicas the seed lists (with their DID keys).
// A seed that is down or lists none changes nothing: known replicas keep
// serving reads while the seed is away.
func (rs *ReadSet) refreshRegistry(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, rs.cfg.ProbeTimeout)
	defer cancel()
	entries, err := rs.cfg.Seed.fetchReplicas(rctx)
	if err != nil {
		rs.log.Debug("reading the seed's replica registry", "directory", rs.URL(), "error", err)
		return
	}
	for _, e := range entries {
		c, err := rs.cfg.Seed.sibling(e.Endpoint)
		if err != nil {
			continue
		}
		rs.mu.Lock()
		idx := slices.IndexFunc(rs.dirs, func(d *readDir) bool { return d.c.URL() == c.URL() })
		rs.mu.Unlock()
		if idx == 0 || (idx > 0 && rs.isSigned(idx)) {
			continue
		}
		kctx, kcancel := context.WithTimeout(ctx, rs.cfg.ProbeTimeout)
		pub, err := c.didKey(kctx, e.DID)
		kcancel()
		if err != nil {
			rs.log.Debug("replica DID key", "replica", e.Endpoint, "error", err)
			continue
		}
		c.verifyRead = replicaVerifier(pub)
		rs.mu.Lock()
		if idx > 0 {
			// A configured replica the seed lists: from now on its answers
			// must be signed (§6.5: registered replicas always sign).
			rs.dirs[idx].c, rs.dirs[idx].signed = c, true
		} else {
			rs.dirs = append(rs.dirs, &readDir{c: c, role: RoleReplica, source: SourceWellKnown, signed: true})
			rs.log.Info("directory replica learned from the seed", "seed", rs.URL(), "replica", c.URL())
		}
		rs.mu.Unlock()
	}
}

func (rs *ReadSet) isSigned(i int) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.dirs[i].signed
}

// probeAll measures every directory's /iicp/health round trip.
func (rs *ReadSet) probeAll(ctx context.Context) {
	rs.mu.Lock()
	dirs := make([]readChoice, len(rs.dirs))
	for i, d := range rs.dirs {
		dirs[i] = readChoice{d: d, c: d.c}
	}
	rs.mu.Unlock()
	var wg sync.WaitGroup
	for _, ch := range dirs {
		d := ch.d
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, rs.cfg.ProbeTimeout)
			defer cancel()
			start := time.Now()
			err := ch.c.health(pctx)
			rtt := time.Since(start)
			if ctx.Err() != nil {
				return
			}
			rs.mu.Lock()
			defer rs.mu.Unlock()
			was := d.st.Healthy
			d.st.Probed, d.st.Healthy = true, err == nil
			switch {
			case err != nil:
				d.st.LastError = err.Error()
			case was && d.rtt > 0:
				d.rtt = time.Duration(float64(d.rtt)*(1-rttSmoothing) + float64(rtt)*rttSmoothing)
			default:
				d.rtt = rtt
			}
			if was != d.st.Healthy {
				rs.log.Info("directory read health changed", "directory", d.c.URL(), "role", d.role, "healthy", d.st.Healthy)
			}
		})
	}
	wg.Wait()
}

// health is GET /iicp/health: nil on 200.
func (c *Client) health(ctx context.Context) error {
	var out struct {
		Status string `json:"status"`
	}
	if err := c.getJSON(ctx, "/iicp/health", &out); err != nil {
		return err
	}
	if s := strings.ToLower(out.Status); s != "" && s != "ok" && s != "healthy" {
		return &Error{Op: "health", Status: 200, Message: "directory reports " + truncate(out.Status)}
	}
	return nil
}
