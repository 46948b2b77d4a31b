package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/acme/autocert"

	"github.com/meshnode/meshnode/cx"
	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/internal/config"
	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/logging"
	"github.com/meshnode/meshnode/internal/operator"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/internal/tlsutil"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/route/mcp"
	"github.com/meshnode/meshnode/route/openai"
	"github.com/meshnode/meshnode/wire"
)

// readyWait bounds how long start-up waits for the first registrations
// before declaring the node ready anyway: a directory outage must not keep
// a node that can serve (and will keep retrying) from starting.
const readyWait = 10 * time.Second

// Options is everything Up needs; cmd/meshnode fills it.
type Options struct {
	Paths  paths.Paths
	Config *config.Config
	// ConfigCreated reports that this run wrote the default config file.
	ConfigCreated bool
	Version       string
	// Out receives the start-up block (stdout); logs go through Logs.
	Out  io.Writer
	Logs *logging.Logs
	// Notify sends a systemd notify state (sdnotify.Notify); nil disables.
	Notify func(state string)
}

// daemon is one running node: every concrete part, wired explicitly.
type daemon struct {
	o        Options
	cfg      *config.Config
	log      *slog.Logger
	id       *identity.Identity
	firstRun bool
	started  time.Time

	be       *builtBackend
	engine   *node.Engine
	bridge   *httpapi.Server
	endpoint string
	acme     *autocert.Manager // the bridge's ACME certificates; nil without http.acme_domains

	embedded    *directory.Server
	embeddedURL string
	dirMode     string
	dirURLs     []string
	clients     []*dirclient.Client
	// reads[i] is where reads of clients[i]'s federation go (its nearest
	// healthy replica, else the seed).
	reads    []*dirclient.ReadSet
	sessions []*dirclient.Session
	// telemetry reports what the routers observe of other nodes (nil
	// without directory sessions).
	telemetry *telemetryQueue

	host host.Host
	mesh *mesh.Mesh
	mcp  *mcp.Server // nil when mcp.enabled is false
	// peerKick asks the peer refresh loop to look for mesh peers now (after
	// a registration: the directory then lists this node and, usually, new
	// peers), instead of waiting for its next tick.
	peerKick chan struct{}

	admin   *admin.Server
	openai  *openai.Server
	reg     *prometheus.Registry // the process's one metrics registry
	lock    *paths.Lock
	dirLock *paths.Lock // the embedded directory's
	monitor *backend.Monitor
	// backendUp is the backend monitor's verdict: false while any backend
	// fails its probe (the node then reports itself unavailable).
	backendUp   atomic.Bool
	backendDown map[int]bool
	taskClient  *http.Client
	cxRing      *cx.KeyRing
	operator    nodeOperator // operator.go
	cxProvider  *cx.Provider

	mu            sync.Mutex
	tokens        map[string]string // directory URL → current node token (LOG-FORBIDDEN)
	dirKeys       map[string]ed25519.PublicKey
	member        membershipFile // this node's credential (LOG-FORBIDDEN)
	operatorToken string
	// memberKick asks the membership loop to renew now (after a registration).
	memberKick chan struct{}
	// tokenCache holds reusable consumer tokens per mesh target (mesh
	// calls to peers when this node holds no membership credential).
	tokenCache *tokenCache
}

// Up runs the node until ctx ends, then shuts down within
// node.shutdown_timeout (deregister, drain tasks, close the mesh).
func Up(ctx context.Context, o Options) error {
	d, err := setup(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting (waiting for the backend, say)
		}
		return err
	}
	return d.run(ctx)
}

// setup builds every part and binds every listener, so configuration and
// port errors surface before anything is announced. On failure everything
// acquired so far is released.
func setup(ctx context.Context, o Options) (*daemon, error) {
	d := &daemon{o: o, cfg: o.Config, log: o.Logs.Named("app"), started: time.Now(),
		tokens: map[string]string{}, dirKeys: map[string]ed25519.PublicKey{}, peerKick: make(chan struct{}, 1),
		operator:   nodeOperator{path: operator.DelegationPath(o.Paths)},
		memberKick: make(chan struct{}, 1), tokenCache: newTokenCache()}
	if err := d.build(ctx); err != nil {
		d.closeAll()
		return nil, err
	}
	return d, nil
}

func (d *daemon) build(ctx context.Context) (err error) {
	o := d.o
	if err := o.Paths.EnsureDirs(); err != nil {
		return err
	}
	if d.lock, err = lockHome(o.Paths.StateDir, paths.NodeLockFile, "meshnode up"); err != nil {
		return err
	}
	var created bool
	if d.id, created, err = identity.LoadNode(o.Paths); err != nil {
		return err
	}
	d.firstRun = created || o.ConfigCreated
	d.chooseDirectoryMode()
	reg, err := newProcessRegistry(o.Version)
	if err != nil {
		return err
	}
	d.reg = reg
	if d.be, err = buildBackend(ctx, d.cfg, o.Paths.StateDir, "meshnode/"+o.Version, o.Logs.For("backend")); err != nil {
		return err
	}
	d.engine, err = node.New(node.Config{NodeID: d.id.NodeID(), MaxConcurrent: d.cfg.Node.MaxConcurrent, Version: o.Version},
		d.be.router, node.WithLogger(o.Logs.For("node")), node.WithRegisterer(reg))
	if err != nil {
		return err
	}
	if err := d.setupMonitor(ctx); err != nil {
		return err
	}
	if d.dirMode == dirDisabled {
		if d.operatorToken, err = loadOrCreateSecret(o.Paths.OperatorToken); err != nil {
			return fmt.Errorf("operator token: %w", err)
		}
		d.engine.SetNodeToken(d.operatorToken)
	}
	steps := []func() error{d.setupCX, func() error { return d.setupBridge(reg) }, d.setupDirectories}
	if d.cfg.Mesh.Enabled {
		steps = append(steps, func() error { return d.setupMesh(ctx, reg) })
	}
	steps = append(steps, d.setupSessions, func() error { return d.registerNodeGauges(reg) }, d.setupAdmin, d.setupMCP, d.setupOpenAI, d.setupGateway)
	d.taskClient = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// Directory modes.
const (
	dirEmbedded = "embedded"
	dirExternal = "external"
	dirDisabled = "disabled"
)

// chooseDirectoryMode applies the embedded default: with no directory
// configured the node runs an in-process directory on loopback, which is
// dev mode for the whole node (plaintext loopback HTTP, private endpoints).
func (d *daemon) chooseDirectoryMode() {
	switch {
	case d.cfg.Directory.Disabled:
		d.dirMode = dirDisabled
	case len(d.cfg.Directory.URLs) == 0:
		d.dirMode = dirEmbedded
		if !d.cfg.Node.Dev {
			d.log.Info("no directory configured: running an in-process directory on loopback (dev mode)")
			d.cfg.Node.Dev = true
		}
	default:
		d.dirMode = dirExternal
		d.dirURLs = append([]string(nil), d.cfg.Directory.URLs...)
	}
}

func (d *daemon) setupBridge(reg *prometheus.Registry) error {
	opts := []httpapi.Option{
		httpapi.WithAddr(d.cfg.HTTP.Listen),
		httpapi.WithLogger(d.o.Logs.For("http")),
		httpapi.WithRegistry(reg),
		httpapi.WithShutdownTimeout(d.cfg.Node.ShutdownTimeout.D()),
		httpapi.WithConfidential(d.cxProvider.Hook()),
	}
	switch {
	case len(d.cfg.HTTP.ACMEDomains) > 0:
		if d.dirMode == dirEmbedded {
			return configErrorf("http.acme_domains: an ACME certificate is for a public node; configure directory.urls (--directory): the in-process directory is plaintext loopback")
		}
		a := &tlsutil.ACME{Domains: d.cfg.HTTP.ACMEDomains, DirectoryURL: d.cfg.HTTP.ACMEDirectory,
			Email: d.cfg.HTTP.ACMEEmail, StateDir: d.o.Paths.StateDir}
		if err := a.Validate(); err != nil {
			return configErrorf("http.acme_domains: %v", err)
		}
		d.acme = a.Manager()
		opts = append(opts, httpapi.WithServerTLS(tlsutil.ServerConfig(d.acme)))
	case d.cfg.HTTP.TLSCert != "":
		opts = append(opts, httpapi.WithTLSFiles(d.cfg.HTTP.TLSCert, d.cfg.HTTP.TLSKey))
	case d.cfg.Node.Dev:
		opts = append(opts, httpapi.WithPlaintextDev())
	default:
		opts = append(opts, httpapi.WithSelfSignedDir(d.o.Paths.StateDir))
	}
	var err error
	if d.bridge, err = httpapi.New(d.engine, opts...); err != nil {
		return err
	}
	if err := d.bridge.Listen(); err != nil {
		return bindError("HTTP bridge", d.cfg.HTTP.Listen, "set --http or http.listen (127.0.0.1:0 picks a free port)", err)
	}
	d.endpoint = d.cfg.Node.Endpoint
	if d.endpoint == "" && d.acme != nil {
		// The certificate names the domain, not the bound IP.
		_, port, _ := net.SplitHostPort(d.bridge.Addr().String())
		d.endpoint = "https://" + net.JoinHostPort(d.cfg.HTTP.ACMEDomains[0], port)
	}
	if d.endpoint == "" {
		d.endpoint = d.bridge.URL()
		if u, err := url.Parse(d.endpoint); err == nil {
			if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() && d.dirMode == dirExternal {
				return fmt.Errorf("http.listen %s is on all interfaces: set node.endpoint to the URL directories and callers should use", d.cfg.HTTP.Listen)
			}
		}
	}
	return nil
}

// setupCX opens the IICP-CX key ring (X25519, 0600 in the state dir) so
// callers can encrypt payloads end to end (iicp-confidentiality.md); a
// rotated key is re-registered at once.
func (d *daemon) setupCX() error {
	ring, err := cx.OpenKeyRing(filepath.Join(d.o.Paths.StateDir, cx.DefaultFileName), d.id.NodeID(),
		cx.WithLogger(d.o.Logs.For("node")),
		cx.WithOnRotate(func(wire.CXPublicKey) {
			for _, s := range d.sessions {
				s.Refresh()
			}
		}))
	if err != nil {
		return fmt.Errorf("cx key ring: %w", err)
	}
	prov, err := cx.NewProvider(ring)
	if err != nil {
		return fmt.Errorf("cx provider: %w", err)
	}
	d.cxRing, d.cxProvider = ring, prov
	return nil
}

// implVersion is the iicp-dir.md §3.1 implementation_version grammar.
var implVersion = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,31}$`)

// registration is the REGISTER body, rebuilt for every registration so new
// mesh addresses are published.
func (d *daemon) registration() wire.RegisterRequest {
	req := wire.RegisterRequest{
		NodeID:             d.id.NodeID(),
		Endpoint:           d.endpoint,
		Region:             d.cfg.Node.Region,
		Capabilities:       d.be.router.Capabilities(),
		Limits:             wire.Limits{MaxConcurrent: d.cfg.Node.MaxConcurrent},
		PublicKey:          base64.StdEncoding.EncodeToString(d.id.Public()),
		SDKLanguage:        "go",
		ImplementationName: "meshnode",
		OperatorDelegation: d.delegation(),
	}
	if b, ok := d.id.Binding(); ok {
		// A rotated or recovered key: the binding carries node_id over.
		req.NodeKeyBinding = &b
	}
	if k := d.cxRing.PublicKey(); k.PublicKey != "" || k.Key != "" {
		req.CXPublicKey = &k
	}
	if implVersion.MatchString(d.o.Version) {
		req.ImplementationVersion = d.o.Version
	}
	if d.host != nil {
		req.Extensions = map[string]json.RawMessage{}
		req.Extensions[mesh.P2PExtensionKey] = mesh.P2PExtension(d.host)
	}
	return req
}

// load is the heartbeat's view of the engine.
func (d *daemon) load() dirclient.Load {
	s := d.engine.Stats()
	return dirclient.Load{Load: s.Load, ActiveJobs: s.ActiveJobs, Available: d.backendUp.Load() && s.ActiveJobs < s.MaxConcurrent}
}

// outcomes hands the engine's real execution outcomes to the sessions'
// heartbeat metrics batches (iicp-dir.md §3.2).
func (d *daemon) outcomes() dirclient.Outcomes {
	o := d.engine.Outcomes()
	return dirclient.Outcomes{Success: o.Success, Failed: o.Failed, SuccessLatencyMs: o.SuccessLatencyMs}
}

// onToken receives each directory's accepted token. The first configured
// directory's token is the one the engine accepts in auth.node_token (the
// engine holds one token; see docs/config.md).
func (d *daemon) onToken(dir string) func(nodeID, tok string) {
	return func(nodeID, tok string) {
		d.mu.Lock()
		d.tokens[dir] = tok
		primary := len(d.dirURLs) > 0 && d.dirURLs[0] == dir
		_, haveKey := d.dirKeys[dir]
		d.mu.Unlock()
		if primary {
			d.engine.SetNodeToken(tok)
			if nodeID != "" && nodeID != d.id.NodeID() {
				d.engine.SetNodeID(nodeID)
			}
		}
		if tok != "" && !haveKey {
			d.fetchDirectoryKey(dir)
		}
		if !d.backendUp.Load() {
			// A registration says available; correct it at once.
			for _, s := range d.sessions {
				s.Beat()
			}
		}
		for _, ch := range []chan struct{}{d.peerKick, d.memberKick} {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// fetchDirectoryKey learns the key that signs consumer tokens and
// membership credentials, so callers holding either are accepted
// (iicp-dir.md §3.12). A directory without a key leaves node-token-only
// authorization.
func (d *daemon) fetchDirectoryKey(dir string) {
	c := d.clientFor(dir)
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Directory.RequestTimeout.D())
	defer cancel()
	hexKey, err := c.DirectoryKey(ctx)
	if err != nil {
		d.log.Debug("directory has no consumer-token key", "directory", dir, "error", err)
		return
	}
	k, err := decodeKey(hexKey)
	if err != nil {
		d.log.Warn("directory key unusable", "directory", dir, "error", err)
		return
	}
	d.setDirectoryKey(dir, k)
}

func (d *daemon) clientFor(dir string) *dirclient.Client {
	for _, c := range d.clients {
		if c.URL() == dir {
			return c
		}
	}
	return nil
}

// nodeToken is the token the node accepts now (for `meshnode token`).
func (d *daemon) nodeToken() string {
	if d.operatorToken != "" {
		return d.operatorToken
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.dirURLs) == 0 {
		return ""
	}
	return d.tokens[d.dirURLs[0]]
}

func (d *daemon) tokenFor(dir string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tokens[dir]
}

// closeAll releases what setup acquired (listeners, host), for failed
// setups and after run.
func (d *daemon) closeAll() {
	if d.bridge != nil {
		_ = d.bridge.Close()
	}
	if d.admin != nil {
		_ = d.admin.Close()
	}
	if d.mesh != nil {
		_ = d.mesh.Close()
	}
	if d.host != nil {
		_ = d.host.Close()
	}
	if d.embedded != nil {
		_ = d.embedded.Close()
	}
	if d.dirLock != nil {
		_ = d.dirLock.Release()
	}
	if d.lock != nil {
		_ = d.lock.Release() // last: the home is free once everything is closed
	}
}

// removeRuntime deletes runtime.json and the admin token on shutdown so
// clients do not find a dead node.
func (d *daemon) removeRuntime() {
	for _, p := range []string{d.o.Paths.Runtime, d.o.Paths.AdminToken} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("removing runtime file", "error", err)
		}
	}
}
