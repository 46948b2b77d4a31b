package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

const (
	// probeTimeout bounds checking whether a directory already answers on
	// the embedded address.
	probeTimeout = time.Second
	// deregisterTimeout bounds the deregistration at shutdown.
	deregisterTimeout = 3 * time.Second
	// maxPeerRefresh caps the interval of asking directories for mesh peers.
	maxPeerRefresh = 30 * time.Second
	// discoverPeersLimit is the discover page used to find mesh peers
	// (iicp-dir.md §3.3: max 50).
	discoverPeersLimit = 50
)

// setupDirectories starts the embedded directory in dev mode. When the
// embedded address is taken by another meshnode's directory, this node
// joins it instead, so several local nodes share one dev directory.
func (d *daemon) setupDirectories() error {
	if d.dirMode != dirEmbedded {
		return nil
	}
	listen := d.cfg.Directory.EmbeddedListen
	if u := "http://" + listen; probeDirectory(u) {
		d.log.Info("joining the directory already running on " + listen)
		d.dirURLs = []string{u}
		return nil
	}
	// The embedded directory's database is the home's directory.db: the
	// same lock as `meshnode directory` on this home.
	lock, err := lockHome(d.o.Paths.StateDir, paths.DirectoryLockFile, "embedded directory")
	if err != nil {
		return fmt.Errorf("%w (or pass --directory with its URL)", err)
	}
	d.dirLock = lock
	srv, err := d.newEmbedded(listen)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		u := "http://" + listen
		if probeDirectory(u) {
			d.log.Info("joining the directory already running on " + listen)
			d.dirURLs = []string{u}
			_ = lock.Release()
			d.dirLock = nil
			return nil
		}
		host, _, _ := net.SplitHostPort(listen)
		srv, err = d.newEmbedded(net.JoinHostPort(host, "0"))
	}
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return bindError("embedded directory", listen, "set directory.embedded_listen or --directory URL", err)
		}
		return fmt.Errorf("embedded directory: %w", err)
	}
	d.embedded = srv
	d.embeddedURL = "http://" + srv.Addr().String()
	d.dirURLs = []string{d.embeddedURL}
	return nil
}

func (d *daemon) newEmbedded(listen string) (*directory.Server, error) {
	srv, err := directory.New(directory.Config{
		Listen:              listen,
		DBPath:              d.o.Paths.DirectoryDB,
		StateDir:            d.o.Paths.StateDir,
		Dev:                 true,
		HeartbeatInterval:   d.cfg.Server.HeartbeatInterval.D(),
		StaleAfter:          d.cfg.Server.StaleAfter.D(),
		ReprobeInterval:     reprobeInterval(d.cfg.Server.ProbeInterval.D()),
		ProbationMinTasks:   d.cfg.Server.ProbationMinTasks,
		ProbationMinAge:     probationAge(d.cfg.Server.ProbationMinAge.D()),
		MaxNodesPerOperator: operatorCap(d.cfg.Server.MaxNodesPerOperator),
		ReporterMinAge:      probationAge(d.cfg.Server.ReporterMinAge.D()),
		TelemetryAlpha:      d.cfg.Server.TelemetryAlpha,
		MembershipTTL:       d.cfg.Server.MembershipTTL.D(),
		Version:             d.o.Version,
	}, directory.WithLogger(d.o.Logs.For("directory")), directory.WithRegistry(d.reg))
	if err != nil {
		return nil, err
	}
	// Bound here, before anything is announced: a taken port fails start-up.
	if err := srv.Listen(); err != nil {
		_ = srv.Close()
		return nil, err
	}
	return srv, nil
}

// probeDirectory reports whether an IICP directory answers /iicp/health at u.
func probeDirectory(u string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/iicp/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// directoryHTTPClient trusts the system roots plus directory.ca_file.
func directoryHTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("directory.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("directory.ca_file %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// setupSessions builds one directory client and registration session per
// directory.
func (d *daemon) setupSessions() error {
	if len(d.dirURLs) == 0 {
		return nil
	}
	hc, err := directoryHTTPClient(d.cfg.Directory.CAFile, d.cfg.Directory.RequestTimeout.D()+5*time.Second)
	if err != nil {
		return err
	}
	store := &fileStore{path: d.o.Paths.Credentials}
	for _, u := range d.dirURLs {
		c, err := dirclient.New(u, dirclient.WithHTTPClient(hc), dirclient.WithUserAgent("meshnode/"+d.o.Version))
		if err != nil {
			return err
		}
		s, err := dirclient.NewSession(dirclient.SessionConfig{
			Client:            c,
			Registration:      d.registration,
			Load:              d.load,
			Outcomes:          d.outcomes,
			Store:             store,
			OnToken:           d.onToken(c.URL()),
			HeartbeatFallback: d.cfg.Directory.HeartbeatFallback.D(),
			BackoffMin:        d.cfg.Directory.BackoffMin.D(),
			BackoffMax:        d.cfg.Directory.BackoffMax.D(),
			TokenRefresh:      d.cfg.Directory.TokenRefresh.D(),
			RequestTimeout:    d.cfg.Directory.RequestTimeout.D(),
			DeregisterTimeout: deregisterTimeout,
			Logger:            d.o.Logs.For("dirclient"),
		})
		if err != nil {
			return err
		}
		rs, err := d.newReadSet(c, len(d.clients) == 0)
		if err != nil {
			return err
		}
		d.clients = append(d.clients, c)
		d.reads = append(d.reads, rs)
		d.sessions = append(d.sessions, s)
	}
	d.telemetry = newTelemetryQueue(d.sessions, d.o.Logs.For("dirclient"))
	// Sessions key tokens by the normalised client URL.
	for i, c := range d.clients {
		d.dirURLs[i] = c.URL()
	}
	return nil
}

// newReadSet is where c's federation is read from: directory.replicas
// (for the first directory) and, unless turned off, the replicas c lists in
// /.well-known/iicp-replicas.json. The embedded dev directory has none.
func (d *daemon) newReadSet(c *dirclient.Client, first bool) (*dirclient.ReadSet, error) {
	var replicas []string
	if first {
		replicas = d.cfg.Directory.Replicas
	}
	return dirclient.NewReadSet(dirclient.ReadSetConfig{
		Seed: c, Replicas: replicas,
		WellKnown:     d.cfg.Directory.DiscoverReplicas && d.dirMode != dirEmbedded,
		ProbeInterval: d.cfg.Directory.ReplicaProbeInterval.D(),
		ProbeTimeout:  min(d.cfg.Directory.RequestTimeout.D(), 3*time.Second),
		Logger:        d.o.Logs.For("dirclient"),
	})
}

func decodeKey(h string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("directory key is not 32 hex-encoded bytes")
	}
	return ed25519.PublicKey(b), nil
}

// peerRefreshLoop feeds the mesh with the libp2p addresses other nodes
// published in their registrations (meshnode.p2p extension), which is how
// a node finds the mesh without any IPFS bootstrap peer.
func (d *daemon) peerRefreshLoop(ctx context.Context) error {
	every := min(maxPeerRefresh, 5*d.cfg.Directory.HeartbeatFallback.D())
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.peerKick:
		}
		d.refreshPeers(ctx)
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(every)
	}
}

func (d *daemon) refreshPeers(ctx context.Context) {
	intents := map[string]bool{wire.IntentChat: true}
	for _, c := range d.be.router.Capabilities() {
		intents[c.Intent] = true
	}
	self := d.host.ID()
	seen := map[peer.ID]bool{}
	var infos []peer.AddrInfo
	for _, c := range d.reads {
		for intent := range intents {
			qctx, cancel := context.WithTimeout(ctx, d.cfg.Directory.RequestTimeout.D())
			nl, err := c.Discover(qctx, dirclient.Query{Intent: intent, Limit: discoverPeersLimit})
			cancel()
			if err != nil {
				d.log.Debug("discovering mesh peers", "directory", c.URL(), "error", err)
				continue
			}
			for _, n := range nl.Nodes {
				raw, ok := n.Extensions[mesh.P2PExtensionKey]
				if !ok {
					continue
				}
				// The directory's node_id must be the extension's key
				// (a registration naming another node's peer is refused).
				ai, err := d.mesh.ParseDirectoryPeer(n.NodeID, raw)
				if err != nil || ai.ID == self || seen[ai.ID] {
					continue
				}
				seen[ai.ID] = true
				infos = append(infos, ai)
			}
		}
	}
	d.log.Debug("mesh peers from directories", "peers", len(infos))
	if len(infos) > 0 {
		d.mesh.AddBootstrapPeers(infos)
	}
	d.refreshRevoked(ctx)
}

// refreshRevoked hands the mesh the union of the directories'
// deregistrations (membership credentials issued before are refused). A
// directory that does not answer leaves the last list in force.
func (d *daemon) refreshRevoked(ctx context.Context) {
	all := map[string]int64{}
	answered := false
	for _, c := range d.clients {
		qctx, cancel := context.WithTimeout(ctx, d.cfg.Directory.RequestTimeout.D())
		r, err := c.Revoked(qctx)
		cancel()
		if err != nil {
			d.log.Debug("revoked memberships", "directory", c.URL(), "error", err)
			continue
		}
		answered = true
		for id, at := range r {
			all[id] = max(all[id], at)
		}
	}
	if answered {
		d.mesh.SetRevoked(all)
	}
}
