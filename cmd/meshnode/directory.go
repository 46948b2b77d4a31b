package main

import (
	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/internal/app"
)

type directoryFlags struct {
	listen  string
	db      string
	dev     bool
	tlsCert string
	tlsKey  string
	resolve []string
}

func newDirectoryCmd(e *env, g *globals) *cobra.Command {
	f := &directoryFlags{}
	cmd := &cobra.Command{
		Use:   "directory",
		Short: "Run an IICP-DIR directory server",
		Long: `Run an IICP-DIR directory: nodes register and heartbeat, clients discover nodes by
intent. State lives in SQLite and survives restarts. Outside --dev the directory serves
TLS 1.3 with --tls-cert/--tls-key or a self-signed certificate kept in the state
directory. Settings come from the [directory_server] table of the config file; flags
override them for this run.`,
		Example: `  meshnode directory --dev                                  # plaintext on 127.0.0.1:8010
  meshnode directory --listen 0.0.0.0:8443 --tls-cert c.pem --tls-key k.pem
  meshnode directory --resolve node.example:8443:10.0.0.5   # probe a node at a fixed address`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			if err := cfg.Validate(); err != nil {
				return withCode(exitConfig, err)
			}
			logs, err := newLogs(e, cfg)
			if err != nil {
				return err
			}
			err = app.RunDirectory(e.ctx, app.DirectoryOptions{
				Paths: p, Config: cfg, Dev: f.dev, Resolve: f.resolve, Version: version(),
				Out: e.stdout, Logs: logs, Notify: notify,
			})
			return withCode(exitFailure, err)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "listen address host:port (directory_server.listen)")
	fl.StringVar(&f.db, "db", "", "SQLite database path (directory_server.db)")
	fl.BoolVar(&f.dev, "dev", false, "development mode: plaintext HTTP on loopback, private node endpoints allowed")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fl.StringSliceVar(&f.resolve, "resolve", nil, "HOST:PORT:ADDR pin for liveness probes, like curl --resolve (repeatable)")
	return cmd
}
