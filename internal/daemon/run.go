package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/internal/tlsutil"
)

// service is one long-running part.
type service struct {
	name  string
	serve func(context.Context) error
}

// group runs services and reports the first failure.
type group struct {
	wg   sync.WaitGroup
	errc chan error
}

func newGroup(n int) *group { return &group{errc: make(chan error, n)} }

func (g *group) start(ctx context.Context, s service) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := s.serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
			g.errc <- fmt.Errorf("%s: %w", s.name, err)
		}
	}()
}

// wait waits for every service until deadline; false when it passed.
func (g *group) wait(deadline time.Time) bool {
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// run starts every service, announces readiness, waits for ctx or a
// failure, then shuts down in order: deregister from directories first
// (while the embedded directory still runs), then stop serving.
func (d *daemon) run(ctx context.Context) (err error) {
	defer d.closeAll()
	infraCtx, stopInfra := context.WithCancel(context.WithoutCancel(ctx))
	defer stopInfra()
	infra := newGroup(12 + len(d.reads))
	infra.start(infraCtx, service{"backend monitor", d.monitor.Serve})
	infra.start(infraCtx, service{"http bridge", d.bridge.Serve})
	if d.openai != nil {
		infra.start(infraCtx, service{"openai api", d.openai.Serve})
	}
	infra.start(infraCtx, service{"admin", d.admin.Serve})
	if d.mcp != nil {
		infra.start(infraCtx, service{"mcp", d.mcp.Serve})
	}
	infra.start(infraCtx, service{"cx key ring", d.cxRing.Serve})
	if d.embedded != nil {
		infra.start(infraCtx, service{"embedded directory", d.embedded.Serve})
	}
	if d.dirMode != dirEmbedded {
		// The embedded dev directory has no replicas: nothing to choose
		// between, so no probes (and no half-dialled connection left for
		// its shutdown to wait on).
		for _, rs := range d.reads {
			infra.start(infraCtx, service{"directory reads", rs.Run})
		}
	}
	if d.mesh != nil {
		infra.start(infraCtx, service{"mesh", d.mesh.Serve})
		if len(d.clients) > 0 {
			infra.start(infraCtx, service{"peer discovery", d.peerRefreshLoop})
			infra.start(infraCtx, service{"mesh membership", d.membershipLoop})
		}
	}
	d.obtainCertificate(ctx)
	sessCtx, stopSessions := context.WithCancel(ctx)
	defer stopSessions()
	sess := newGroup(len(d.sessions))
	for _, s := range d.sessions {
		sess.start(sessCtx, service{"directory session", s.Serve})
	}
	if d.telemetry != nil {
		sess.start(sessCtx, service{"telemetry", d.telemetry.serve})
	}

	select {
	case err = <-infra.errc:
	default:
		err = d.announce(ctx, infra)
	}
	if err == nil {
		select {
		case <-ctx.Done():
		case err = <-infra.errc:
		}
	}

	d.notify("STOPPING=1")
	if err == nil {
		d.log.Info("shutting down")
	} else {
		d.log.Error("shutting down after a failure", "error", err)
	}
	deadline := time.Now().Add(d.cfg.Node.ShutdownTimeout.D())
	stopSessions()
	okSess := sess.wait(deadline)
	stopInfra()
	okInfra := infra.wait(deadline)
	d.removeRuntime()
	if err == nil && (!okSess || !okInfra) {
		err = fmt.Errorf("shutdown exceeded %v", d.cfg.Node.ShutdownTimeout.D())
	}
	return err
}

// readyProgress is how often start-up reports that it still waits for a
// registration.
const readyProgress = 2 * time.Second

// announce waits (bounded) for the first registrations, then writes
// runtime.json, prints the start-up block and tells systemd READY=1.
func (d *daemon) announce(ctx context.Context, infra *group) error {
	deadline := time.Now().Add(readyWait)
	progress := time.Now().Add(readyProgress)
	for !d.registeredAll() && time.Now().Before(deadline) {
		if time.Now().After(progress) {
			// A slow or unreachable directory must not look like a hang.
			d.log.Info("waiting for directory registration before announcing", "state", d.directorySummary(),
				"announce_in", time.Until(deadline).Round(time.Second))
			progress = time.Now().Add(readyProgress)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-infra.errc:
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
	rt := admin.Runtime{
		PID: os.Getpid(), Version: d.o.Version, NodeID: d.id.NodeID(), AdminURL: d.admin.URL(),
		HTTPURL: d.bridge.URL(), Endpoint: d.endpoint, Directories: d.dirURLs,
		EmbeddedDirectory: d.embeddedURL, P2PAddrs: d.p2pAddrs(), StartedAt: d.started,
	}
	if d.openai != nil {
		rt.OpenAIURL = d.openai.URL()
	}
	if d.mcp != nil {
		rt.MCPURL = d.mcp.URL()
	}
	if pid, err := d.id.PeerID(); err == nil {
		rt.PeerID = pid.String()
	}
	if err := admin.WriteRuntime(d.o.Paths.Runtime, rt); err != nil {
		return fmt.Errorf("writing runtime file: %w", err)
	}
	d.printBlock(rt)
	d.notify("READY=1")
	d.notify("STATUS=" + d.directorySummary())
	return nil
}

// registeredAll reports whether every session has registered once.
func (d *daemon) registeredAll() bool {
	for _, s := range d.sessions {
		if s.Status().RegisteredAt.IsZero() {
			return false
		}
	}
	return true
}

func (d *daemon) directorySummary() string {
	switch d.dirMode {
	case dirDisabled:
		return "no directory (operator token only)"
	}
	var parts []string
	for _, s := range d.sessions {
		st := s.Status()
		parts = append(parts, fmt.Sprintf("%s %s", st.Directory, st.State))
	}
	return strings.Join(parts, ", ")
}

func (d *daemon) notify(state string) {
	if d.o.Notify != nil {
		d.o.Notify(state)
	}
}

// printBlock is the one start-up block: who the node is, where it listens,
// how the directory stands, and what to do next.
func (d *daemon) printBlock(rt admin.Runtime) {
	if d.o.Out == nil {
		return
	}
	var b strings.Builder
	if d.firstRun {
		fmt.Fprintf(&b, "meshnode: first run — created identity %s and config %s\n", d.o.Paths.IdentityKey, d.o.Paths.ConfigFile)
	}
	fmt.Fprintf(&b, "meshnode is up (version %s)\n", d.o.Version)
	fmt.Fprintf(&b, "  node ID      %s\n", rt.NodeID)
	if rt.PeerID != "" {
		fmt.Fprintf(&b, "  peer ID      %s\n", rt.PeerID)
	}
	fmt.Fprintf(&b, "  HTTP bridge  %s  (POST /v1/task, GET /iicp/health, GET /metrics)\n", rt.HTTPURL)
	if rt.OpenAIURL != "" {
		fmt.Fprintf(&b, "  OpenAI API   %s  (chat/completions, completions, embeddings, models)\n", rt.OpenAIURL)
	}
	if rt.Endpoint != rt.HTTPURL {
		fmt.Fprintf(&b, "  endpoint     %s\n", rt.Endpoint)
	}
	if d.acme != nil {
		fmt.Fprintf(&b, "  tls          ACME certificate for %s (cached in %s)\n",
			strings.Join(d.cfg.HTTP.ACMEDomains, ", "), tlsutil.ACMECacheDir(d.o.Paths.StateDir))
	}
	for _, a := range rt.P2PAddrs {
		fmt.Fprintf(&b, "  mesh         %s\n", a)
	}
	if l := d.lanLine(); l != "" {
		fmt.Fprintf(&b, "  LAN          %s\n", l)
	}
	if rt.MCPURL != "" {
		fmt.Fprintf(&b, "  MCP          %s  (tools: the mesh's intents)\n", rt.MCPURL)
	}
	fmt.Fprintf(&b, "  backend      %s\n", d.be.describe)
	switch d.dirMode {
	case dirEmbedded:
		where := "in-process, dev mode"
		if d.embedded == nil { // the embedded address was another meshnode's directory
			where = "joined the dev directory already running there, dev mode"
		}
		fmt.Fprintf(&b, "  directory    %s (%s)\n", strings.Join(rt.Directories, ", "), where)
	case dirExternal:
		fmt.Fprintf(&b, "  directory    %s\n", strings.Join(rt.Directories, ", "))
	case dirDisabled:
		fmt.Fprintf(&b, "  directory    none (directory.disabled); accepted token: `meshnode token`\n")
	}
	for _, s := range d.sessions {
		st := s.Status()
		line := fmt.Sprintf("  registration %s: %s", st.Directory, st.State)
		if st.ObservedSourceIP != "" {
			line += ", observed IP " + st.ObservedSourceIP
		}
		if st.LastError != "" {
			line += " (" + st.LastError + "; retrying)"
		}
		fmt.Fprintln(&b, line)
	}
	home := ""
	if d.o.Paths.Home != "" {
		home = " --home " + d.o.Paths.Home
	}
	fmt.Fprintf(&b, "next steps:\n")
	fmt.Fprintf(&b, "  meshnode call%s \"hello\"     send a task from another terminal\n", home)
	fmt.Fprintf(&b, "  meshnode status%s           directory, peers, load\n", home)
	fmt.Fprintf(&b, "  edit %s to change defaults (docs/config.md)\n", d.o.Paths.ConfigFile)
	fmt.Fprint(d.o.Out, b.String())
}

// acmeWait bounds the start-up wait for the bridge's first ACME
// certificate; autocert keeps trying on later handshakes.
const acmeWait = 2 * time.Minute

// obtainCertificate gets the bridge's ACME certificate before the node
// registers, so the directory's liveness probe and the first callers meet a
// publicly trusted certificate instead of waiting on issuance. A failure is
// logged, not fatal: the node runs and autocert retries on the next
// handshake (the CA may be briefly down or rate-limiting).
func (d *daemon) obtainCertificate(ctx context.Context) {
	if d.acme == nil {
		return
	}
	domain := d.cfg.HTTP.ACMEDomains[0]
	d.log.Info("obtaining the HTTP bridge's ACME certificate", "domain", domain, "ca", d.acme.Client.DirectoryURL)
	wctx, cancel := context.WithTimeout(ctx, acmeWait)
	defer cancel()
	notAfter, err := tlsutil.Obtain(wctx, d.acme, domain)
	if err != nil {
		d.log.Warn("no ACME certificate yet; the bridge retries on the next TLS handshake",
			"domain", domain, "err", err, "fix", "the CA must reach this listener on port 443 of the domain (TLS-ALPN-01)")
		return
	}
	d.log.Info("ACME certificate ready", "domain", domain, "not_after", notAfter.UTC().Format(time.RFC3339))
}
