package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/internal/config"
	"github.com/meshnode/meshnode/internal/daemon"
	"github.com/meshnode/meshnode/internal/sdnotify"
)

// upFlags are runtime overrides: they change this run only and are never
// written back to the config file.
type upFlags struct {
	directories   []string
	http          string
	backend       string
	acme          acmeFlags
	maxConcurrent int
	noDirectory   bool
	dev           bool
	p2p           []string
	noMesh        bool
	mdns          bool
	openai        string
	openaiKeyEnv  string
	noOpenAI      bool
	mcpListen     string
	noMCP         bool
}

func newUpCmd(e *env, g *globals) *cobra.Command {
	f := &upFlags{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the node",
		Long: `Run the node: load the config (creating a commented default and an identity key on
first run), serve the HTTP bridge, join the libp2p mesh, register with the configured
directories (or, with none configured, with an in-process directory on loopback) and
serve tasks until SIGINT/SIGTERM. Shutdown deregisters and drains running tasks within
node.shutdown_timeout; a second signal exits at once.

Flags override the config file for this run only; persistent changes go in the file.`,
		Example: `  meshnode up                                        # embedded directory, echo or Ollama
  meshnode up --backend http://127.0.0.1:8000        # a vLLM server
  meshnode up --directory https://dir.example.net    # register with a public directory
  meshnode up --home /tmp/n2 --http 127.0.0.1:0      # a second node on the same machine
  MY_KEY=sk-... meshnode up --openai 0.0.0.0:8091 --openai-api-key-env MY_KEY
  MESHNODE_UP_MAX_CONCURRENT=4 meshnode up`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := resolvePaths(e, g)
			if err != nil {
				return err
			}
			cfg, created, err := loadConfig(e, g, p, true)
			if err != nil {
				return err
			}
			if err := f.apply(cmd, cfg); err != nil {
				return err
			}
			logs, err := newLogs(e, cfg)
			if err != nil {
				return err
			}
			err = daemon.Up(e.ctx, daemon.Options{
				Paths: p, Config: cfg, ConfigCreated: created, Version: version(),
				Out: e.stdout, Logs: logs, Notify: notify,
			})
			return withCode(startupCode(err), err)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.directories, "directory", nil, "directory URL to register with (repeatable; replaces directory.urls)")
	fl.StringVar(&f.http, "http", "", "HTTP bridge listen address host:port (http.listen)")
	f.acme.register(fl, "http", "the HTTP bridge")
	fl.StringVar(&f.backend, "backend", "", "OpenAI-compatible backend base URL (backend.url)")
	fl.IntVar(&f.maxConcurrent, "max-concurrent", 0, "tasks run at once (node.max_concurrent)")
	fl.BoolVar(&f.noDirectory, "no-directory", false, "run without any directory; accept a local operator token")
	fl.BoolVar(&f.dev, "dev", false, "development mode: plaintext HTTP on loopback, private endpoints allowed")
	fl.StringSliceVar(&f.p2p, "p2p", nil, "libp2p listen multiaddr (repeatable; replaces mesh.listen)")
	fl.BoolVar(&f.mdns, "mdns", false, "find meshnode nodes on the LAN by mDNS (mesh.mdns; on in the home profile, --mdns=false turns it off)")
	fl.BoolVar(&f.noMesh, "no-mesh", false, "run without the libp2p mesh (HTTP bridge and directory only; mesh.enabled = false)")
	fl.StringVar(&f.openai, "openai", "", "OpenAI-compatible API listen address host:port (openai.listen; non-loopback needs an API key)")
	fl.StringVar(&f.openaiKeyEnv, "openai-api-key-env", "", "environment variable holding the OpenAI API key clients must send (openai.api_key_env)")
	fl.BoolVar(&f.noOpenAI, "no-openai", false, "do not serve the OpenAI-compatible API (openai.enabled = false)")
	fl.StringVar(&f.mcpListen, "mcp-listen", "", "MCP server listen address host:port, served at /mcp (mcp.listen)")
	fl.BoolVar(&f.noMCP, "no-mcp", false, "run without the MCP server (mcp.enabled = false)")
	return cmd
}

// apply writes the given overrides into cfg and revalidates it.
func (f *upFlags) apply(cmd *cobra.Command, cfg *config.Config) error {
	fl := cmd.Flags()
	if fl.Changed("directory") {
		cfg.Directory.URLs = f.directories
		cfg.Directory.Disabled = false
	}
	if fl.Changed("http") {
		cfg.HTTP.Listen = f.http
	}
	if fl.Changed("backend") {
		cfg.Backend.URL = f.backend
	}
	f.acme.apply(fl, &cfg.HTTP.ACMEDomains, &cfg.HTTP.ACMEDirectory, &cfg.HTTP.ACMEEmail)
	if fl.Changed("max-concurrent") {
		cfg.Node.MaxConcurrent = f.maxConcurrent
	}
	if f.noDirectory {
		if fl.Changed("directory") {
			return usageErr("--no-directory and --directory contradict each other")
		}
		cfg.Directory.Disabled = true
		cfg.Directory.URLs = nil
	}
	if fl.Changed("dev") {
		cfg.Node.Dev = f.dev
	}
	if fl.Changed("p2p") {
		if f.noMesh {
			return usageErr("--no-mesh and --p2p contradict each other")
		}
		cfg.Mesh.Listen = f.p2p
	}
	if fl.Changed("mdns") {
		cfg.Mesh.MDNS = f.mdns
	}
	if f.noMesh {
		cfg.Mesh.Enabled = false
	}
	if err := f.applyOpenAI(cmd, cfg); err != nil {
		return err
	}
	if err := f.applyMCP(cmd, cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return withCode(exitConfig, err)
	}
	return nil
}

// applyOpenAI writes the openai.* overrides.
func (f *upFlags) applyOpenAI(cmd *cobra.Command, cfg *config.Config) error {
	fl := cmd.Flags()
	if f.noOpenAI {
		if fl.Changed("openai") {
			return usageErr("--no-openai and --openai contradict each other")
		}
		cfg.OpenAI.Enabled = false
	}
	if fl.Changed("openai") {
		cfg.OpenAI.Listen, cfg.OpenAI.Enabled = f.openai, true
	}
	if fl.Changed("openai-api-key-env") {
		cfg.OpenAI.APIKeyEnv = f.openaiKeyEnv
	}
	return nil
}

// applyMCP applies --mcp-listen and --no-mcp.
func (f *upFlags) applyMCP(cmd *cobra.Command, cfg *config.Config) error {
	if cmd.Flags().Changed("mcp-listen") {
		if f.noMCP {
			return usageErr("--no-mcp and --mcp-listen contradict each other")
		}
		cfg.MCP.Listen, cfg.MCP.Enabled = f.mcpListen, true
	}
	if f.noMCP {
		cfg.MCP.Enabled = false
	}
	return nil
}

// startupCode is the exit code of a failed up/directory: 3 for what only
// an operator can fix (the units do not restart it), else 1 (restarted;
// never 2, which the units also exclude from restarts).
func startupCode(err error) int {
	if errors.Is(err, daemon.ErrConfig) {
		return exitConfig
	}
	return exitFailure
}

// notify forwards to systemd when run under Type=notify.
func notify(state string) { _, _ = sdnotify.Notify(state) }
