package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshnode/meshnode/internal/daemon"
)

type directoryFlags struct {
	listen  string
	db      string
	dev     bool
	tlsCert string
	tlsKey  string
	resolve []string

	acme acmeFlags

	seed        string
	noSeedLog   bool
	seedKey     string
	replicaKey  string
	publicURL   string
	p2p         []string
	gossipPeers []string
	noGossip    bool
}

func newDirectoryCmd(e *env, g *globals) *cobra.Command {
	f := &directoryFlags{}
	cmd := &cobra.Command{
		Use:   "directory",
		Short: "Run an IICP-DIR directory server",
		Long: `Run an IICP-DIR directory: nodes register and heartbeat, clients discover nodes by
intent. State lives in SQLite and survives restarts. Outside --dev the directory serves
TLS 1.3 with --tls-cert/--tls-key, with a publicly trusted certificate from an ACME CA
(--acme-domain NAME: Let's Encrypt by default, TLS-ALPN-01 on this listener, which must be
reachable on port 443 of NAME; cached in the state directory), or a self-signed certificate
kept in the state directory. Settings come from the [directory_server] table of the config file; flags
override them for this run.

Federation (iicp-federated-directory.md): by default the directory is a Genesis Seed and
appends every registration to a signed, hash-chained event log (--no-seed-log turns it
off). With --seed URL it is a replica: it bootstraps from the seed's snapshot, follows the
event tail, serves discover from the verified state and sends writes to the seed (307).
The seed pushes new events and liveness digests to its replicas over its own HTTP(S) URL
(long-poll), so --seed URL alone keeps a replica within well under a second of the seed;
against a seed without long-poll the replica says so and polls every 30 s. Gossip is an
optional extra: a seed gossips when given --p2p, a replica when given --gossip-peer.`,
		Example: `  meshnode directory --dev                                  # plaintext on 127.0.0.1:8010
  meshnode directory --listen 0.0.0.0:8443 --tls-cert c.pem --tls-key k.pem
  meshnode directory --listen 0.0.0.0:443 --acme-domain dir.example.org --acme-email ops@example.org
  meshnode directory --resolve node.example:8443:10.0.0.5   # probe a node at a fixed address
  meshnode directory --seed https://seed.example             # a real-time replica
  meshnode directory --p2p /ip4/0.0.0.0/udp/4011/quic-v1      # a seed that gossips events
  meshnode directory --seed https://seed.example --gossip-peer /ip4/198.51.100.7/udp/4011/quic-v1/p2p/12D3KooW...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd, e, g) },
	}
	f.register(cmd.Flags())
	return cmd
}

// run applies the flags over the config file and runs the directory until
// the context ends.
func (f *directoryFlags) run(cmd *cobra.Command, e *env, g *globals) error {
	p, err := resolvePaths(e, g)
	if err != nil {
		return err
	}
	cfg, _, err := loadConfig(e, g, p, false)
	if err != nil {
		return err
	}
	fl := cmd.Flags()
	if fl.Changed("listen") {
		cfg.Server.Listen = f.listen
	}
	if fl.Changed("db") {
		cfg.Server.DB = f.db
	}
	if fl.Changed("tls-cert") || fl.Changed("tls-key") {
		cfg.Server.TLSCert, cfg.Server.TLSKey = f.tlsCert, f.tlsKey
	}
	f.acme.apply(fl, &cfg.Server.ACMEDomains, &cfg.Server.ACMEDirectory, &cfg.Server.ACMEEmail)
	if err := cfg.Validate(); err != nil {
		return withCode(exitConfig, err)
	}
	logs, err := newLogs(e, cfg)
	if err != nil {
		return err
	}
	if f.seed != "" && f.noSeedLog {
		return usageErr("--seed (run as a replica) and --no-seed-log contradict each other")
	}
	if f.noGossip && (len(f.p2p) > 0 || len(f.gossipPeers) > 0) {
		return usageErr("--no-gossip contradicts --p2p/--gossip-peer")
	}
	err = daemon.RunDirectory(e.ctx, daemon.DirectoryOptions{
		Paths: p, Config: cfg, Dev: f.dev, Resolve: f.resolve, Version: version(),
		Out: e.stdout, Logs: logs, Notify: notify,
		SeedURL: f.seed, NoSeedLog: f.noSeedLog, SeedKey: f.seedKey, ReplicaKey: f.replicaKey,
		PublicURL: f.publicURL, P2P: f.p2p, GossipPeers: f.gossipPeers, NoGossip: f.noGossip,
	})
	return withCode(startupCode(err), err)
}

// register declares the flags; their MESHNODE_DIRECTORY_* twins come from
// applyEnv like every command's.
func (f *directoryFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.listen, "listen", "", "listen address host:port (directory_server.listen)")
	fl.StringVar(&f.db, "db", "", "SQLite database path (directory_server.db)")
	fl.BoolVar(&f.dev, "dev", false, "development mode: plaintext HTTP on loopback, private node endpoints allowed")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key (PEM)")
	f.acme.register(fl, "directory_server", "the directory")
	fl.StringSliceVar(&f.resolve, "resolve", nil, "HOST:PORT:ADDR pin for liveness probes, like curl --resolve (repeatable)")
	fl.StringVar(&f.seed, "seed", "", "run as a replica of the Genesis Seed at this URL")
	fl.BoolVar(&f.noSeedLog, "no-seed-log", false, "run a standalone directory without the signed federation log")
	fl.StringVar(&f.seedKey, "seed-key", "", "seed event-signing key file (default: federation-seed.key in the state directory)")
	fl.StringVar(&f.replicaKey, "replica-key", "", "replica response-signing key file (default: federation-replica.key in the state directory)")
	fl.StringVar(&f.publicURL, "public-url", "", "public base URL of this directory (its did:web identity); default: the listen URL")
	fl.StringSliceVar(&f.p2p, "p2p", nil, "gossip listen multiaddr (repeatable); a seed gossips events when set")
	fl.StringSliceVar(&f.gossipPeers, "gossip-peer", nil, "the seed's gossip multiaddr with /p2p/<id> (replica; repeatable)")
	fl.BoolVar(&f.noGossip, "no-gossip", false, "no gossip host (replicas still follow the seed by long-poll)")
}
