package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/dirbridge/directory/federation"
	"github.com/meshnode/meshnode/internal/config"
	"github.com/meshnode/meshnode/internal/logging"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/mesh"
)

// Federation key files in the state directory (0600, created on first use).
const (
	seedKeyFile    = "federation-seed.key"
	replicaKeyFile = "federation-replica.key"
	gossipKeyFile  = "federation-gossip.key"
)

// DirectoryOptions configures `meshnode directory`.
type DirectoryOptions struct {
	Paths   paths.Paths
	Config  *config.Config
	Dev     bool
	Resolve []string
	Version string
	Out     io.Writer
	Logs    *logging.Logs
	Notify  func(string)

	// SeedURL makes this directory a replica of that Genesis Seed
	// (iicp-federated-directory.md); empty runs a seed (or, with NoSeedLog,
	// a standalone directory).
	SeedURL string
	// NoSeedLog runs a standalone directory without the signed event log.
	NoSeedLog bool
	// SeedKey and ReplicaKey are key files; empty: in the state directory.
	SeedKey, ReplicaKey string
	// PublicURL is the directory's public base URL (its did:web identity).
	PublicURL string
	// P2P are gossip listen multiaddrs; GossipPeers the seed's gossip host
	// for a replica. Gossip runs when either is set, unless NoGossip.
	P2P, GossipPeers []string
	NoGossip         bool

	registry *prometheus.Registry // set by RunDirectory
	// stateDir is where the directory's files live (set by RunDirectory).
	stateDir string
}

// dirServer is the part every directory mode shares.
type dirServer interface {
	Listen(ctx context.Context) error
	URL() string
	Serve(ctx context.Context) error
	Close() error
}

// RunDirectory runs an IICP-DIR directory until ctx ends: a Genesis Seed
// (the default: every registration appended to the signed log), a replica
// of a seed (--seed), or a standalone directory (--no-seed-log).
func RunDirectory(ctx context.Context, o DirectoryOptions) error {
	if err := o.Paths.EnsureDirs(); err != nil {
		return err
	}
	var err error
	if o.registry, err = newProcessRegistry(o.Version); err != nil {
		return err
	}
	applyMemoryLimit(o)
	dc := directoryConfig(o)
	if err := os.MkdirAll(dc.StateDir, 0o700); err != nil {
		return fmt.Errorf("directory state: %w", err)
	}
	lock, err := lockHome(dc.StateDir, paths.DirectoryLockFile, "meshnode directory")
	if err != nil {
		return err
	}
	defer lock.Release()
	o.stateDir = dc.StateDir
	if err := mesh.CheckListenAddrs(o.P2P); err != nil {
		return fmt.Errorf("%w; set --p2p (port 0 picks a free one)", err)
	}
	var srv dirServer
	var mode string
	var gossipAddrs []string
	switch {
	case o.SeedURL != "":
		srv, err = newReplica(ctx, o, dc)
		mode = "replica of " + o.SeedURL
	case o.NoSeedLog:
		srv, err = newPlainDirectory(o, dc)
		mode = "standalone (no federation log)"
	default:
		srv, err = newSeed(ctx, o, dc)
		mode = "genesis seed (signed event log)"
	}
	if err == nil {
		// Every listener is bound before anything is announced.
		if err = srv.Listen(ctx); err != nil {
			_ = srv.Close()
		}
	}
	if sd, ok := srv.(*federation.SeedDirectory); ok && err == nil {
		gossipAddrs = sd.GossipAddrs()
	}
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return bindError("directory", dc.Listen, "set --listen or directory_server.listen (127.0.0.1:0 picks a free port)", err)
		}
		return err
	}
	if err := registerFederation(o.registry, srv); err != nil {
		return err
	}
	printDirectoryBlock(o, srv.URL(), dc.DBPath, mode, gossipAddrs)
	if o.Notify != nil {
		o.Notify("READY=1")
		o.Notify("STATUS=directory listening on " + srv.URL())
	}
	return srv.Serve(ctx)
}

func directoryConfig(o DirectoryOptions) directory.Config {
	s := o.Config.Server
	db, state := o.Paths.DirectoryDB, o.Paths.StateDir
	if s.DB != "" {
		// Every file of the directory (federation log, keys, certificate,
		// lock) lives beside its database, so two directories with their
		// own --db never share a signed log.
		if abs, err := filepath.Abs(s.DB); err == nil {
			db = abs
		} else {
			db = s.DB
		}
		state = filepath.Dir(db)
	}
	return directory.Config{
		Listen:              s.Listen,
		DBPath:              db,
		StateDir:            state,
		Dev:                 o.Dev,
		TLSCertFile:         s.TLSCert,
		ACME:                directory.ACMEConfig{Domains: s.ACMEDomains, DirectoryURL: s.ACMEDirectory, Email: s.ACMEEmail},
		TLSKeyFile:          s.TLSKey,
		Resolve:             o.Resolve,
		HeartbeatInterval:   s.HeartbeatInterval.D(),
		StaleAfter:          s.StaleAfter.D(),
		ReprobeInterval:     reprobeInterval(s.ProbeInterval.D()),
		ProbationMinTasks:   s.ProbationMinTasks,
		ProbationMinAge:     probationAge(s.ProbationMinAge.D()),
		MaxNodesPerOperator: operatorCap(s.MaxNodesPerOperator),
		ReporterMinAge:      probationAge(s.ReporterMinAge.D()),
		TelemetryAlpha:      s.TelemetryAlpha,
		MembershipTTL:       s.MembershipTTL.D(),
		RegisterRateLimit:   s.RegisterRateLimit,
		BcryptCost:          s.BcryptCost,
		Version:             o.Version,
	}
}

// operatorCap maps the config's "0: no cap" to the directory's negative
// value (its zero means "default").
func operatorCap(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// probationAge maps the config's "0s: no minimum age" to the directory's
// negative value (its zero means "default").
func probationAge(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// applyMemoryLimit sets directory_server.memory_limit_mib as the runtime's
// soft memory limit unless GOMEMLIMIT already set one.
func applyMemoryLimit(o DirectoryOptions) {
	if mib := o.Config.Server.MemoryLimitMiB; mib > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(mib) << 20)
	}
}

// plainDirectory adapts directory.Server to dirServer.
type plainDirectory struct{ *directory.Server }

func (p plainDirectory) Listen(context.Context) error { return p.Server.Listen() }

func (p plainDirectory) URL() string {
	scheme := "https"
	if !p.TLS() {
		scheme = "http"
	}
	return scheme + "://" + p.Addr().String()
}

func newPlainDirectory(o DirectoryOptions, dc directory.Config) (dirServer, error) {
	srv, err := directory.New(dc, o.dirOptions()...)
	if err != nil {
		return nil, err
	}
	return plainDirectory{srv}, nil
}

func newSeed(ctx context.Context, o DirectoryOptions, dc directory.Config) (dirServer, error) {
	key, err := federation.LoadOrCreateKey(orState(o, o.SeedKey, seedKeyFile))
	if err != nil {
		return nil, err
	}
	return federation.NewSeedDirectory(ctx, federation.SeedDirectoryConfig{
		Directory: dc,
		Options:   o.dirOptions(),
		Seed: federation.SeedConfig{Key: key, PublicURL: o.PublicURL, Insecure: o.Dev,
			Logger: o.Logs.For("directory")},
		Gossip: gossipConfig(o),
	})
}

func newReplica(ctx context.Context, o DirectoryOptions, dc directory.Config) (dirServer, error) {
	key, err := federation.LoadOrCreateKey(orState(o, o.ReplicaKey, replicaKeyFile))
	if err != nil {
		return nil, err
	}
	return federation.NewReplicaDirectory(ctx, federation.ReplicaDirectoryConfig{
		Directory: dc,
		Options:   o.dirOptions(),
		Replica: federation.ReplicaConfig{SeedURL: o.SeedURL, Key: key, PublicURL: o.PublicURL,
			Insecure: o.Dev, Logger: o.Logs.For("directory")},
		Gossip: gossipConfig(o),
	})
}

// gossipConfig is nil (poll only) unless a listen address or a gossip peer
// was given: a directory opens no libp2p port nobody asked for.
func gossipConfig(o DirectoryOptions) *federation.GossipConfig {
	if o.NoGossip || (len(o.P2P) == 0 && len(o.GossipPeers) == 0) {
		return nil
	}
	return &federation.GossipConfig{Listen: o.P2P, Peers: o.GossipPeers,
		KeyFile: filepath.Join(o.stateDir, gossipKeyFile)}
}

func orState(o DirectoryOptions, path, name string) string {
	if path != "" {
		return path
	}
	return filepath.Join(o.stateDir, name)
}

// printDirectoryBlock is the directory's start-up block.
func printDirectoryBlock(o DirectoryOptions, u, db, mode string, gossip []string) {
	if o.Out == nil {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "meshnode directory %s listening on %s\n  database  %s\n  mode      %s\n", o.Version, u, db, mode)
	for _, a := range gossip {
		fmt.Fprintf(&b, "  gossip    %s\n", a)
	}
	if o.Dev {
		fmt.Fprintf(&b, "  dev mode: plaintext, loopback only, private node endpoints allowed\n")
	}
	tlsLines(&b, o)
	dev := ""
	if o.Dev {
		dev = " --dev"
	}
	fmt.Fprintf(&b, "next: meshnode up --directory %s%s\n", u, dev)
	if o.SeedURL == "" && !o.NoSeedLog {
		// Pasted on this machine it must work: its own home (own lock, log
		// and keys) and a free port.
		host := "127.0.0.1"
		if h, _, err := net.SplitHostPort(o.Config.Server.Listen); err == nil && h != "" {
			host = h
		}
		fmt.Fprintf(&b, "      meshnode directory --seed %s --home %s --listen %s%s   # a replica of this seed\n",
			u, o.stateDir+"-replica", net.JoinHostPort(host, "0"), dev)
	}
	fmt.Fprint(o.Out, b.String())
}

// reprobeInterval maps the config's "0 = off" to the directory's "negative
// = off" (its zero means the default).
func reprobeInterval(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// tlsLines says where the certificate comes from and, for the self-signed
// one, exactly how nodes and clients come to trust it.
func tlsLines(b *strings.Builder, o DirectoryOptions) {
	s := o.Config.Server
	switch {
	case o.Dev:
	case len(s.ACMEDomains) > 0:
		fmt.Fprintf(b, "  tls       ACME certificate for %s (cached in %s)\n",
			strings.Join(s.ACMEDomains, ", "), filepath.Join(o.Paths.StateDir, "acme"))
	case s.TLSCert == "":
		cert := directory.SelfSignedCertPath(o.Paths.StateDir)
		fmt.Fprintf(b, "  tls       self-signed certificate %s: nodes and clients must trust it, with\n"+
			"            directory.ca_file = %q in their config.toml, or SSL_CERT_FILE=%s;\n"+
			"            for a publicly trusted certificate use --acme-domain NAME\n", cert, cert, cert)
	}
}
