package config

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
)

// base is the home profile and the one table of defaults. Profiles below
// change only what differs; nothing else in meshnode invents a default for
// a configurable value.
func base() Config {
	return Config{
		Version: CurrentVersion,
		Profile: ProfileHome,
		Node: Node{
			Region:        "local",
			MaxConcurrent: 2, // a home machine shares its GPU with its owner
			// Bounds shutdown: deregistering and draining in-flight tasks.
			ShutdownTimeout: Duration(10 * time.Second),
		},
		// Loopback by default: exposing a home machine is an explicit choice.
		HTTP: HTTP{Listen: "127.0.0.1:8090"},
		// The OpenAI-compatible API stays on loopback in every profile: an
		// address others can reach needs an API key the operator sets.
		OpenAI: OpenAI{Enabled: true, Listen: "127.0.0.1:8091", APIKeyEnv: "MESHNODE_OPENAI_API_KEY"},
		Backend: Backend{
			// Ollama's default listen address.
			Detect: "127.0.0.1:11434",
			// Long enough for a cold model load on CPU, short enough to free
			// the slot when the backend hangs.
			Timeout: Duration(120 * time.Second),
		},
		Directory: Directory{
			EmbeddedListen: "127.0.0.1:8010",
			// iicp-dir.md §3.2: nodes SHOULD heartbeat every 30 s.
			HeartbeatFallback: Duration(30 * time.Second),
			// Backoff trades recovery speed against load on a struggling
			// directory; jitter spreads a fleet's retries.
			BackoffMin:     Duration(time.Second),
			BackoffMax:     Duration(60 * time.Second),
			TokenRefresh:   Duration(24 * time.Hour),
			RequestTimeout: Duration(10 * time.Second),
			// Reads follow the federation: replicas from the seed's registry.
			Replicas:             []string{},
			DiscoverReplicas:     true,
			ReplicaProbeInterval: Duration(30 * time.Second),
		},
		Server: Server{
			Listen: "127.0.0.1:8010",
			// iicp-dir.md §3.14 reference defaults.
			HeartbeatInterval: Duration(30 * time.Second),
			StaleAfter:        Duration(90 * time.Second),
			ProbeInterval:     Duration(5 * time.Minute),
			// docs/spec-decisions.md "probation" and "per-operator limit".
			ProbationMinTasks:   100,
			ProbationMinAge:     Duration(time.Hour),
			MaxNodesPerOperator: 100,
			ReporterMinAge:      Duration(72 * time.Hour),
			TelemetryAlpha:      0.1,
			MembershipTTL:       Duration(6 * time.Hour),
			RegisterRateLimit:   60,
			BcryptCost:          10,
			// 100k nodes need ~350 MiB live (docs/architecture.md, bench
			// dirscale); the limit keeps RSS under 1 GiB at that size.
			MemoryLimitMiB: 768,
		},
		Mesh: Mesh{
			Enabled: true,
			Listen: []string{
				"/ip4/0.0.0.0/udp/9485/quic-v1",
				"/ip6/::/udp/9485/quic-v1",
				"/ip4/0.0.0.0/tcp/9485",
			},
			// Home-network manners: few connections.
			ConnsLow:       32,
			ConnsHigh:      96,
			AdvertInterval: Duration(20 * time.Second),
			// Home meshes find each other on the LAN (docs/spec-decisions.md "Home mesh").
			MDNS: true,
		},
		Admin: Admin{Listen: "127.0.0.1:0"},
		MCP:   MCP{Enabled: true, Listen: DefaultMCPListen},
		Log:   Log{Level: "info", Format: "text"},
	}
}

// profiles apply each profile's differences to the base.
var profiles = map[string]func(*Config){
	ProfileHome: func(*Config) {},
	ProfileServer: func(c *Config) {
		c.Node.MaxConcurrent = 8
		c.Node.ShutdownTimeout = Duration(30 * time.Second)
		c.HTTP.Listen = "0.0.0.0:8090"
		c.Server.Listen = "0.0.0.0:8443"
		c.Mesh.ConnsLow = 128
		c.Mesh.ConnsHigh = 512
		// A server announces nothing on its network; peers come from directories.
		c.Mesh.MDNS = false
		c.Log.Format = "json"
	},
	// test: loopback only, free ports, short timers, so an end-to-end test
	// sees heartbeats, expiry and recovery within seconds.
	ProfileTest: func(c *Config) {
		c.Node.ShutdownTimeout = Duration(5 * time.Second)
		c.HTTP.Listen = "127.0.0.1:0"
		c.OpenAI.Listen = "127.0.0.1:0"
		c.Backend.Timeout = Duration(10 * time.Second)
		// Hermetic: never probe a local Ollama the test did not start.
		c.Backend.Detect = DetectOff
		c.Directory.EmbeddedListen = "127.0.0.1:0"
		c.Directory.HeartbeatFallback = Duration(time.Second)
		c.Directory.BackoffMin = Duration(100 * time.Millisecond)
		c.Directory.BackoffMax = Duration(time.Second)
		c.Directory.TokenRefresh = Duration(time.Minute)
		c.Directory.RequestTimeout = Duration(3 * time.Second)
		c.Directory.ReplicaProbeInterval = Duration(time.Second)
		c.Server.Listen = "127.0.0.1:0"
		c.Server.HeartbeatInterval = Duration(500 * time.Millisecond)
		c.Server.StaleAfter = Duration(3 * time.Second)
		c.Mesh.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
		c.Mesh.ConnsLow = 8
		c.Mesh.ConnsHigh = 32
		c.Mesh.AdvertInterval = Duration(2 * time.Second)
		// Hermetic: tests never announce on, or dial, the machine's LAN.
		c.Mesh.MDNS = false
		c.MCP.Listen = "127.0.0.1:0"
	},
}

// Profiles lists the profile names in a stable order.
func Profiles() []string {
	out := make([]string, 0, len(profiles))
	for p := range profiles {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Defaults returns the defaults of profile.
func Defaults(profile string) (Config, error) {
	apply, ok := profiles[profile]
	if !ok {
		return Config{}, fmt.Errorf("unknown profile %q (want one of %s)", profile, strings.Join(Profiles(), ", "))
	}
	c := base()
	c.Profile = profile
	apply(&c)
	return c, nil
}

// DetectOff as backend.detect disables Ollama autodetection.
const DetectOff = "off"

// Subsystems are the logger names [log.levels] may set.
// Each is printed as subsystem=<name> in every line its logger writes
// (internal/logging); "libp2p" carries libp2p's own lines.
var Subsystems = []string{"app", "node", "backend", "http", "directory", "dirclient", "mesh", "libp2p", "admin", "mcp", "openai"}

var logLevels = map[string]bool{"debug": true, "info": true, "warn": true, "error": true}

// Validate checks the whole configuration, including runtime overrides, and
// names the offending key.
func (c *Config) Validate() error {
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, key+": "+fmt.Sprintf(format, args...))
	}
	if c.Version != CurrentVersion {
		bad("version", "must be %d", CurrentVersion)
	}
	if _, ok := profiles[c.Profile]; !ok {
		bad("profile", "unknown profile %q", c.Profile)
	}
	c.validateNode(bad)
	c.validateDirectory(bad)
	c.validateServer(bad)
	if c.Mesh.ConnsLow < 1 || c.Mesh.ConnsHigh < c.Mesh.ConnsLow {
		bad("mesh.conns_low/conns_high", "need 1 <= conns_low <= conns_high")
	}
	// Above a third of the 90 s peer TTL one lost advert could expire a peer.
	if d := c.Mesh.AdvertInterval.D(); d < time.Second || d > 30*time.Second {
		bad("mesh.advert_interval", "%v outside 1s-30s", d)
	}
	for _, a := range c.Mesh.Listen {
		if !strings.HasPrefix(a, "/") {
			bad("mesh.listen", "%q is not a multiaddr", a)
		}
	}
	if host, _, err := net.SplitHostPort(c.Admin.Listen); err != nil || !isLoopback(host) {
		bad("admin.listen", "must be a loopback host:port, got %q", c.Admin.Listen)
	}
	c.validateMCP(bad)
	c.validateLog(bad)
	if len(errs) > 0 {
		return fmt.Errorf("invalid config: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (c *Config) validateNode(bad func(string, string, ...any)) {
	if c.Node.Region == "" || len(c.Node.Region) > 64 {
		bad("node.region", "must be 1-64 characters")
	}
	if c.Node.MaxConcurrent < 1 || c.Node.MaxConcurrent > 1024 {
		bad("node.max_concurrent", "must be 1-1024, got %d", c.Node.MaxConcurrent)
	}
	if c.Node.Endpoint != "" {
		if err := checkURL(c.Node.Endpoint, c.Node.Dev); err != nil {
			bad("node.endpoint", "%v", err)
		}
	}
	if c.Node.ShutdownTimeout <= 0 {
		bad("node.shutdown_timeout", "must be positive")
	}
	if _, _, err := net.SplitHostPort(c.OpenAI.Listen); err != nil && c.OpenAI.Enabled {
		bad("openai.listen", "must be host:port, got %q", c.OpenAI.Listen)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", "must be host:port, got %q", c.HTTP.Listen)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		bad("http.tls_cert/tls_key", "set both or neither")
	}
	if len(c.HTTP.ACMEDomains) > 0 && c.HTTP.TLSCert != "" {
		bad("http.acme_domains", "set either acme_domains or tls_cert/tls_key, not both")
	}
	if len(c.HTTP.ACMEDomains) > 0 && c.Node.Dev {
		bad("http.acme_domains", "an ACME certificate is for a public node; drop node.dev / --dev (dev mode is plaintext loopback)")
	}
	if c.Backend.URL != "" {
		// A backend is usually local plaintext (Ollama, vLLM): http is fine.
		if err := checkURL(c.Backend.URL, true); err != nil {
			bad("backend.url", "%v", err)
		}
	}
	if c.Backend.Detect != DetectOff {
		if _, _, err := net.SplitHostPort(c.Backend.Detect); err != nil {
			bad("backend.detect", "must be host:port or %q, got %q", DetectOff, c.Backend.Detect)
		}
	}
	if c.Backend.Timeout <= 0 {
		bad("backend.timeout", "must be positive")
	}
}

func (c *Config) validateDirectory(bad func(string, string, ...any)) {
	d := c.Directory
	for _, u := range d.URLs {
		// iicp-dir.md §6 SEC-TLS-01: directories are HTTPS; plaintext only in dev.
		if err := checkURL(u, c.Node.Dev); err != nil {
			bad("directory.urls", "%v", err)
		}
	}
	if d.Disabled && len(d.URLs) > 0 {
		bad("directory.disabled", "set together with directory.urls")
	}
	if _, _, err := net.SplitHostPort(d.EmbeddedListen); err != nil {
		bad("directory.embedded_listen", "must be host:port, got %q", d.EmbeddedListen)
	}
	if d.HeartbeatFallback <= 0 || d.RequestTimeout <= 0 {
		bad("directory.heartbeat_fallback/request_timeout", "must be positive")
	}
	if d.BackoffMin <= 0 || d.BackoffMax < d.BackoffMin {
		bad("directory.backoff_min/backoff_max", "need 0 < backoff_min <= backoff_max")
	}
	if d.TokenRefresh < 0 {
		bad("directory.token_refresh", "must not be negative")
	}
	for _, u := range d.Replicas {
		if err := checkURL(u, c.Node.Dev); err != nil {
			bad("directory.replicas", "%v", err)
		}
	}
	if len(d.Replicas) > 0 && len(d.URLs) == 0 {
		bad("directory.replicas", "needs directory.urls: the first URL is the seed the replicas follow")
	}
	if d.ReplicaProbeInterval <= 0 {
		bad("directory.replica_probe_interval", "must be positive")
	}
}

func (c *Config) validateServer(bad func(string, string, ...any)) {
	s := c.Server
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		bad("directory_server.listen", "must be host:port, got %q", s.Listen)
	}
	if s.HeartbeatInterval <= 0 || s.StaleAfter <= s.HeartbeatInterval {
		bad("directory_server.stale_after", "must exceed heartbeat_interval (> 0)")
	}
	if s.ProbeInterval < 0 {
		bad("directory_server.probe_interval", "must not be negative (0 turns active probing off)")
	}
	if s.MembershipTTL < Duration(2*time.Second) || s.MembershipTTL > Duration(24*time.Hour) {
		bad("directory_server.membership_ttl", "must be between 2s and 24h")
	}
	if s.RegisterRateLimit < 1 {
		bad("directory_server.register_rate_limit", "must be at least 1 (registrations per source IP and minute)")
	}
	if s.MemoryLimitMiB < 0 {
		bad("directory_server.memory_limit_mib", "must not be negative (0 turns the limit off)")
	}
	if s.BcryptCost < 4 || s.BcryptCost > 31 {
		bad("directory_server.bcrypt_cost", "must be in 4..31, got %d", s.BcryptCost)
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		bad("directory_server.tls_cert/tls_key", "set both or neither")
	}
	if len(s.ACMEDomains) > 0 && s.TLSCert != "" {
		bad("directory_server.acme_domains", "set either acme_domains or tls_cert/tls_key, not both")
	}
	if s.ProbationMinTasks < 1 || s.ProbationMinAge < 0 {
		bad("directory_server.probation_min_tasks/probation_min_age", "need at least 1 task and an age >= 0")
	}
	if s.ReporterMinAge < 0 || s.TelemetryAlpha < 0.05 || s.TelemetryAlpha > 0.3 {
		bad("directory_server.reporter_min_age/telemetry_alpha", "need an age >= 0 (below 72h only with --dev) and an alpha in [0.05, 0.3]")
	}
	if s.MaxNodesPerOperator < 0 {
		bad("directory_server.max_nodes_per_operator", "must be >= 0 (0 = no cap)")
	}
}

func (c *Config) validateLog(bad func(string, string, ...any)) {
	if !logLevels[c.Log.Level] {
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	known := map[string]bool{}
	for _, s := range Subsystems {
		known[s] = true
	}
	for sub, lvl := range c.Log.Levels {
		if !known[sub] {
			bad("log.levels", "unknown subsystem %q (want one of %s)", sub, strings.Join(Subsystems, ", "))
		}
		if !logLevels[lvl] {
			bad("log.levels."+sub, "must be debug, info, warn or error, got %q", lvl)
		}
	}
}

// checkURL accepts an absolute http(s) URL with a host; plaintext http only
// when allowed (dev mode).
func checkURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return fmt.Errorf("%q uses plaintext http (allowed only with --dev / node.dev)", raw)
		}
	default:
		return fmt.Errorf("%q: scheme must be http or https", raw)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
