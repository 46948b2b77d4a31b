package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshnode/meshnode/internal/buildinfo"
	"github.com/meshnode/meshnode/internal/config"
	"github.com/meshnode/meshnode/internal/daemon"
	"github.com/meshnode/meshnode/internal/logging"
	"github.com/meshnode/meshnode/internal/paths"
)

// Exit codes (docs/cli.md).
const (
	exitOK = 0
	// exitFailure: a runtime failure (cannot bind, backend unusable, ...).
	exitFailure = 1
	// exitUsage: bad command line (unknown flag or command, bad argument).
	exitUsage = 2
	// exitConfig: the configuration file or an override is invalid.
	exitConfig = 3
	// exitNotRunning: no running node answers (status, peers, token).
	exitNotRunning = 4
	// exitTaskFailed: call reached a node but the task failed or timed out.
	exitTaskFailed = 5
	// exitNoNode: call found no node for the intent (IICP-E033) or none
	// answered (no_available_node), or the directory was unreachable.
	exitNoNode = 6
	// exitInterrupted: a second SIGINT/SIGTERM ended a graceful shutdown.
	exitInterrupted = 130
)

// exitError carries an exit code up to run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: code, err: err}
}

func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// env is the process environment, replaceable in tests.
type env struct {
	get    func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// ctx ends on the first SIGINT/SIGTERM (set by run).
	ctx context.Context
	// stopProfile ends --cpuprofile (nil without it); run calls it.
	stopProfile func() error
}

// globals are the root's persistent flags.
type globals struct {
	home     string
	config   string
	logLevel string
	cpuProf  string
	memProf  string
}

// run executes the CLI and returns the process exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signalContext(stderr)
	defer stop()
	e := &env{get: os.Getenv, stdin: stdin, stdout: stdout, stderr: stderr, ctx: ctx}
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if e.stopProfile != nil {
		err = errors.Join(err, e.stopProfile())
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "meshnode:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Cobra's own errors (unknown command/flag, bad arguments) are usage errors.
	return exitUsage
}

func newRoot(e *env) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "meshnode",
		Short: "An IICP node: find LLM providers by intent and route tasks peer-to-peer",
		Long: `meshnode is a Go implementation of IICP. "meshnode up" runs a node that serves an
OpenAI-compatible backend (Ollama, vLLM, llama.cpp...) to the mesh, registers with IICP
directories and answers tasks over HTTP and libp2p. The other commands talk to a running
node or a directory.

Every flag has an environment twin: global flags are MESHNODE_<FLAG> (MESHNODE_HOME), and
command flags are MESHNODE_<COMMAND>_<FLAG> (MESHNODE_UP_HTTP, MESHNODE_CALL_TIMEOUT).
Dashes become underscores; repeatable flags take comma-separated values. A flag given on
the command line wins over its environment twin.`,
		Example: `  meshnode up                     # run a node (in-process directory, echo or Ollama backend)
  meshnode call "hello"           # send a task from another terminal
  meshnode status                 # what the running node is doing`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd, e.get); err != nil {
				return err
			}
			if err := e.startProfile(g.cpuProf); err != nil {
				return err
			}
			return e.startHeapProfile(g.memProf)
		},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr("%v", err) })
	pf := root.PersistentFlags()
	pf.StringVar(&g.home, "home", "", "put config and state in this one directory instead of the XDG paths")
	pf.StringVar(&g.config, "config", "", "config file (default: config.toml in the config directory)")
	pf.StringVar(&g.logLevel, "log-level", "", "override log.level: debug, info, warn or error")
	pf.StringVar(&g.cpuProf, "cpuprofile", "", "write a CPU profile of this process to FILE until it exits (go tool pprof; for performance reports)")
	pf.StringVar(&g.memProf, "memprofile", "", "write a heap profile of this process to FILE on the first SIGINT/SIGTERM, before shutdown (go tool pprof)")
	root.AddCommand(newUpCmd(e, g), newIdentityCmd(e, g), newDirectoryCmd(e, g), newCallCmd(e, g), newStatusCmd(e, g),
		newPeersCmd(e, g), newTokenCmd(e, g), newIDCmd(e, g), newPathsCmd(e, g), newVersionCmd(e), newOperatorCmd(e, g), newAuditCmd(e, g))
	root.InitDefaultCompletionCmd() // now, so its flags get env twins too
	annotateEnv(root)
	return root
}

// envName is a flag's environment twin: MESHNODE_<FLAG> for the root's
// persistent flags, MESHNODE_<COMMAND>_<FLAG> for command flags.
func envName(cmd *cobra.Command, f *pflag.Flag) string {
	up := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }
	if cmd.Root().PersistentFlags().Lookup(f.Name) != nil {
		return "MESHNODE_" + up(f.Name)
	}
	var parts []string
	for c := cmd; c.HasParent(); c = c.Parent() {
		parts = append([]string{up(c.Name())}, parts...)
	}
	return "MESHNODE_" + strings.Join(parts, "_") + "_" + up(f.Name)
}

// applyEnv sets every flag not given on the command line from its
// environment twin. One generic rule for all commands, so no flag can
// forget its twin.
func applyEnv(cmd *cobra.Command, get func(string) string) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name := envName(cmd, f)
		v := get(name)
		if v == "" {
			return
		}
		if serr := cmd.Flags().Set(f.Name, v); serr != nil {
			err = usageErr("%s=%q: %v", name, v, serr)
		}
	})
	return err
}

// annotateEnv appends each flag's environment twin to its help text.
func annotateEnv(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			f.Usage += " [$" + envName(c, f) + "]"
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
		f.Usage += " [$" + envName(root, f) + "]"
	})
	walk(root)
}

// resolvePaths applies --home / MESHNODE_HOME.
func resolvePaths(e *env, g *globals) (paths.Paths, error) {
	p, err := paths.Resolve(g.home, e.get)
	if err != nil {
		return p, withCode(exitConfig, err)
	}
	return p, nil
}

// loadConfig loads the config file (creating the commented default at the
// default location on first run) and applies --log-level.
func loadConfig(e *env, g *globals, p paths.Paths, create bool) (*config.Config, bool, error) {
	path := g.config
	if path == "" {
		path = p.ConfigFile
	}
	var cfg *config.Config
	var created bool
	var err error
	switch {
	case create && g.config == "":
		if err = p.EnsureDirs(); err != nil {
			return nil, false, withCode(exitFailure, err)
		}
		cfg, created, err = config.LoadOrInit(path, config.ProfileHome)
	default:
		cfg, err = config.Load(path)
		if errors.Is(err, config.ErrNotFound) && g.config == "" {
			d, _ := config.Defaults(config.ProfileHome)
			cfg, err = &d, nil
		}
	}
	if err != nil {
		return nil, false, withCode(exitConfig, err)
	}
	if g.logLevel != "" {
		cfg.Log.Level = g.logLevel
	}
	return cfg, created, nil
}

// newLogs builds the loggers on stderr.
func newLogs(e *env, cfg *config.Config) (*logging.Logs, error) {
	l, err := logging.New(e.stderr, cfg.Log.Format, cfg.Log.Level, cfg.Log.Levels)
	if err != nil {
		return nil, withCode(exitConfig, err)
	}
	daemon.RouteLibraryLogs(l) // libp2p's lines in the same format, subsystem "libp2p"
	return l, nil
}

func version() string { return buildinfo.Version }

// startProfile starts --cpuprofile; run stops it after the command.
func (e *env) startProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return withCode(exitConfig, fmt.Errorf("--cpuprofile: %w", err))
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return withCode(exitConfig, fmt.Errorf("--cpuprofile: %w", err))
	}
	e.stopProfile = func() error { pprof.StopCPUProfile(); return f.Close() }
	return nil
}

// startHeapProfile arms --memprofile: the heap profile is written when the
// shutdown signal arrives, while the command still holds its working set
// (a profile at exit would show what shutdown left). run waits for it.
func (e *env) startHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return withCode(exitConfig, fmt.Errorf("--memprofile: %w", err))
	}
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		select {
		case <-e.ctx.Done():
			runtime.GC() // the profile shows the heap as of the last GC
			done <- errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
		case <-stop: // the command ended on its own: no signal, no profile
			done <- f.Close()
		}
	}()
	cpu := e.stopProfile
	e.stopProfile = func() error {
		var err error
		if cpu != nil {
			err = cpu()
		}
		if e.ctx.Err() == nil {
			close(stop) // no signal came
		}
		return errors.Join(err, <-done)
	}
	return nil
}
