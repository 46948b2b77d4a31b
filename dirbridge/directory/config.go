package directory

import (
	"github.com/prometheus/client_golang/prometheus"

	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/meshnode/meshnode/wire/token"
)

// Config is everything an operator can set. Zero values take the defaults
// listed in defaults below (the one place defaults live).
type Config struct {
	// Listen is the TCP address to serve on ("127.0.0.1:0" for tests). Empty
	// means no listener: only Handler() is used and Serve runs the
	// background loops.
	Listen string
	// DBPath is the SQLite file. Empty means StateDir/directory.db.
	DBPath string
	// StateDir holds the database (by default) and the generated
	// self-signed TLS certificate when TLSCertFile is empty.
	StateDir string
	// Dev allows plaintext HTTP on a loopback listen address, private node
	// endpoints and plain-http liveness probes. Refused on a non-loopback
	// listen address.
	Dev bool
	// TLSCertFile / TLSKeyFile name a PEM certificate and key. When empty
	// (and not Dev) a self-signed certificate is generated once and kept in
	// StateDir.
	TLSCertFile string
	TLSKeyFile  string
	// TLSHosts are extra DNS names/IPs for the generated certificate.
	TLSHosts []string
	// ACME, when Domains is set, gets a publicly trusted certificate from
	// an ACME CA instead (acme.go).
	ACME ACMEConfig
	// PublicURL, when set, is the directory's base URL (used as ACK
	// "directory", ticket "iss" and consumer-token "iss"). Otherwise it is
	// derived per request from the scheme and Host the caller used.
	PublicURL string
	// Resolve overrides the liveness prober's dial target, like curl
	// --resolve: "HOST:PORT:ADDR". SNI and certificate verification still
	// use HOST.
	Resolve []string
	// ExtraRootsPEM are PEM certificates the prober trusts in addition to
	// the system roots (which honour SSL_CERT_FILE).
	ExtraRootsPEM [][]byte
	// TrustedProxies are CIDRs whose forwarded-for headers may be used for
	// rate limiting. Observation (DIR-ADDR-05) always reads the headers.
	TrustedProxies []string

	// RegisterRateLimit registrations per RegisterRateWindow per source IP
	// (iicp-dir.md §3.1/§6, DIR-RL-01).
	RegisterRateLimit  int
	RegisterRateWindow time.Duration
	// MaxConnsPerIP caps open connections per source (IPv4 address, IPv6
	// /64) on the listener; 0 means httpx.DefaultConnsPerIP.
	MaxConnsPerIP int

	// HeartbeatInterval is next_heartbeat_ms in PONG/ACK.
	HeartbeatInterval time.Duration
	// StaleAfter is the liveness window: a node not heard from for longer
	// is dormant and excluded from discover/bootstrap (90 s).
	StaleAfter time.Duration
	// ProbeTimeout is the liveness probe budget (5 s).
	ProbeTimeout time.Duration
	// ReprobeInterval is how often each registered endpoint is re-probed
	// (iicp-dir.md §3.9c/§3.14: 300 s, DIR-PROBE-NODE-01). Below 300 s only
	// in Dev mode; negative turns active probing off.
	ReprobeInterval time.Duration
	// ReprobeConcurrency bounds active probes in flight.
	ReprobeConcurrency int
	// TicketTTL and ConsumerTokenTTL bound the signed tokens' lifetime.
	TicketTTL        time.Duration
	ConsumerTokenTTL time.Duration
	// MembershipTTL is the lifetime of membership credentials (POST
	// /v1/membership; nodes renew at half-life). Default 6 h, at most
	// token.MaxMembershipLifetime.
	MembershipTTL time.Duration
	// FlushInterval is how often heartbeat state is written behind to SQLite.
	FlushInterval time.Duration
	// AddressHistoryRetention is how long address history rows are kept
	// (DIR-ADDR-06 demands at least 30 days).
	AddressHistoryRetention time.Duration
	// BcryptCost is the token hash cost (tests lower it).
	BcryptCost int
	// ProbationMinTasks is the completed-task count a node needs to leave
	// probation (iicp-dir.md §3.4); see probation.go for the whole rule.
	ProbationMinTasks int64
	// ProbationMinAge is how long a node must have been registered to leave
	// probation: the directory-observed half of the rule, since task counts
	// are self-reported (iicp-semantics.md §11.2). Negative: no age
	// requirement.
	ProbationMinAge time.Duration
	// ProbationShare is the share of a qos=interactive answer (rounded
	// down) that probationary nodes may take beside graduated ones; they
	// also fill places graduated nodes leave empty. Negative: none beyond
	// the empty places.
	ProbationShare float64
	// ProbationPerNetwork caps probationary nodes per source network (/24,
	// /48) in one interactive answer. Negative: no cap.
	ProbationPerNetwork int
	// MaxNodesPerOperator caps the nodes one verified operator key may have
	// registered at once; a further delegated node is refused (403).
	// Negative: no cap.
	MaxNodesPerOperator int
	// ReporterMinAge is the age (since first registration) a node needs
	// before its telemetry counts toward a quorum or its audit reports
	// become integrity evidence (iicp-semantics.md §11.7/§11.8: 3 days).
	// Only a --dev directory may lower it (negative: no age gate), for
	// tests that cannot wait three days.
	ReporterMinAge time.Duration
	// TelemetryAlpha is the EMA factor of observed_latency_ms
	// (iicp-telemetry.md §T4.2: 0.1, configurable in [0.05, 0.3]).
	TelemetryAlpha float64
	// AllowHighRisk lifts the public-mesh refusal of high_risk intents (a
	// private compliance profile). Prohibited intents are always refused.
	AllowHighRisk bool
	// Version is reported by /iicp/health and /v1/stats.
	Version string
}

// defaults is the single table of default values.
var defaults = Config{
	RegisterRateLimit:       60,
	RegisterRateWindow:      60 * time.Second,
	HeartbeatInterval:       30 * time.Second,
	StaleAfter:              90 * time.Second,
	ProbeTimeout:            5 * time.Second,
	ReprobeInterval:         minReprobeInterval,
	ReprobeConcurrency:      32, // 100k endpoints × ~50 ms connect / 32 ≈ 160 s < one interval
	TicketTTL:               120 * time.Second,
	ConsumerTokenTTL:        300 * time.Second,
	MembershipTTL:           token.DefaultMembershipLifetime,
	FlushInterval:           time.Second,
	AddressHistoryRetention: 35 * 24 * time.Hour,
	BcryptCost:              10,
	ProbationMinTasks:       100,
	ProbationMinAge:         time.Hour,
	ProbationShare:          0.2,
	ProbationPerNetwork:     1,
	MaxNodesPerOperator:     100,
	ReporterMinAge:          defaultReporterMinAge,
	TelemetryAlpha:          defaultTelemetryAlpha,
	Version:                 "dev",
}

// minAddressRetention is the DIR-ADDR-06 floor.
const minAddressRetention = 30 * 24 * time.Hour

func (c *Config) applyDefaults() {
	setDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.RegisterRateLimit == 0 {
		c.RegisterRateLimit = defaults.RegisterRateLimit
	}
	setDur(&c.RegisterRateWindow, defaults.RegisterRateWindow)
	setDur(&c.HeartbeatInterval, defaults.HeartbeatInterval)
	setDur(&c.StaleAfter, defaults.StaleAfter)
	setDur(&c.ProbeTimeout, defaults.ProbeTimeout)
	setDur(&c.ReprobeInterval, defaults.ReprobeInterval)
	if c.ReprobeConcurrency == 0 {
		c.ReprobeConcurrency = defaults.ReprobeConcurrency
	}
	setDur(&c.TicketTTL, defaults.TicketTTL)
	setDur(&c.ConsumerTokenTTL, defaults.ConsumerTokenTTL)
	setDur(&c.MembershipTTL, defaults.MembershipTTL)
	setDur(&c.FlushInterval, defaults.FlushInterval)
	setDur(&c.AddressHistoryRetention, defaults.AddressHistoryRetention)
	if c.BcryptCost == 0 {
		c.BcryptCost = defaults.BcryptCost
	}
	if c.ProbationMinTasks == 0 {
		c.ProbationMinTasks = defaults.ProbationMinTasks
	}
	setDur(&c.ProbationMinAge, defaults.ProbationMinAge)
	if c.ProbationShare == 0 {
		c.ProbationShare = defaults.ProbationShare
	}
	if c.ProbationPerNetwork == 0 {
		c.ProbationPerNetwork = defaults.ProbationPerNetwork
	}
	if c.MaxNodesPerOperator == 0 {
		c.MaxNodesPerOperator = defaults.MaxNodesPerOperator
	}
	if c.Version == "" {
		c.Version = defaults.Version
	}
	setDur(&c.ReporterMinAge, defaults.ReporterMinAge)
	if c.TelemetryAlpha == 0 {
		c.TelemetryAlpha = defaults.TelemetryAlpha
	}
}

// validate checks the combination of settings; errors name the setting.
func (c *Config) validate() error {
	if c.DBPath == "" && c.StateDir == "" {
		return errors.New("directory: DBPath or StateDir is required")
	}
	if c.Listen != "" {
		host, _, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return fmt.Errorf("directory: listen address %q: %w", c.Listen, err)
		}
		if c.Dev && !isLoopbackHost(host) {
			return fmt.Errorf("directory: dev mode (plaintext HTTP, private endpoints) only on a loopback listen address, not %q", c.Listen)
		}
		if !c.Dev && c.TLSCertFile == "" && c.StateDir == "" {
			return errors.New("directory: TLS needs TLSCertFile/TLSKeyFile or a StateDir for a generated certificate")
		}
	}
	if err := c.ACME.validate(c); err != nil {
		return err
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("directory: TLSCertFile and TLSKeyFile go together")
	}
	if c.ConsumerTokenTTL < time.Second || c.ConsumerTokenTTL > token.MaxConsumerLifetime {
		return fmt.Errorf("directory: ConsumerTokenTTL %v outside 1s..%v (nodes refuse longer-lived tokens)", c.ConsumerTokenTTL, token.MaxConsumerLifetime)
	}
	if c.MembershipTTL < 2*time.Second || c.MembershipTTL > token.MaxMembershipLifetime {
		return fmt.Errorf("directory: MembershipTTL %v outside 2s..%v (nodes refuse longer-lived credentials)", c.MembershipTTL, token.MaxMembershipLifetime)
	}
	if c.AddressHistoryRetention < minAddressRetention {
		return fmt.Errorf("directory: address history retention %v is below the 30-day minimum (DIR-ADDR-06)", c.AddressHistoryRetention)
	}
	if c.ProbationShare > 1 || math.IsNaN(c.ProbationShare) || c.ProbationMinTasks < 0 {
		return errors.New("directory: ProbationShare must be at most 1 and ProbationMinTasks >= 0")
	}
	if c.ReprobeInterval > 0 && c.ReprobeInterval < minReprobeInterval && !c.Dev {
		return fmt.Errorf("directory: probe interval %v is below the %v iicp-dir.md §3.14 allows per endpoint; set directory_server.probe_interval to at least %v (shorter only in dev mode)",
			c.ReprobeInterval, minReprobeInterval, minReprobeInterval)
	}
	if err := c.validateEvidence(); err != nil {
		return err
	}
	if c.ReprobeConcurrency < 0 {
		return errors.New("directory: ReprobeConcurrency must be >= 0")
	}
	if c.RegisterRateLimit < 0 || c.BcryptCost < 4 || c.BcryptCost > 31 {
		return errors.New("directory: rate limit must be >= 0 and bcrypt cost in 4..31")
	}
	if _, err := parseResolve(c.Resolve); err != nil {
		return err
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		return err
	}
	for i, p := range c.ExtraRootsPEM {
		if !x509.NewCertPool().AppendCertsFromPEM(p) {
			return fmt.Errorf("directory: extra root %d holds no PEM certificate", i)
		}
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// parseResolve turns "HOST:PORT:ADDR" entries into a dial map keyed by
// "host:port" (host lower-cased). ADDR may be a bracketed IPv6 literal.
func parseResolve(entries []string) (map[string]string, error) {
	m := make(map[string]string, len(entries))
	for _, e := range entries {
		host, rest, ok := strings.Cut(e, ":")
		port, addr, ok2 := strings.Cut(rest, ":")
		addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if !ok || !ok2 || host == "" || port == "" {
			return nil, fmt.Errorf("directory: resolve entry %q is not HOST:PORT:ADDR", e)
		}
		if _, err := netip.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("directory: resolve entry %q: address: %w", e, err)
		}
		m[strings.ToLower(host)+":"+port] = net.JoinHostPort(addr, port)
	}
	return m, nil
}

func parsePrefixes(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("directory: trusted proxy %q: %w", c, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Option adjusts a Server at construction; options return errors.
type Option func(*Server) error

// WithLogger sets the logger (default: discard; the composition root passes one).
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) error {
		if l == nil {
			return errors.New("directory: nil logger")
		}
		s.log = l
		return nil
	}
}

// WithRegistry registers the directory's series in reg, the process's
// one registry (the caller adds Go, process and build_info collectors);
// /metrics then serves all of reg. Without it the directory keeps a
// registry of its own with the Go and process collectors.
func WithRegistry(reg *prometheus.Registry) Option {
	return func(s *Server) error {
		if reg == nil {
			return errors.New("directory: nil registry")
		}
		s.registry = reg
		return nil
	}
}

// WithClock injects the time source (tests drive expiry without sleeping).
func WithClock(now func() time.Time) Option {
	return func(s *Server) error {
		if now == nil {
			return errors.New("directory: nil clock")
		}
		s.now = now
		return nil
	}
}

// WithSigningKey sets the directory's Ed25519 key (consumer tokens, route
// tickets). Without it a key is generated once and persisted in the database.
func WithSigningKey(k ed25519.PrivateKey) Option {
	return func(s *Server) error {
		if len(k) != ed25519.PrivateKeySize {
			return errors.New("directory: signing key is not an Ed25519 private key")
		}
		s.signKey = k
		return nil
	}
}

// WithOnChange attaches the federation hook: it is called synchronously,
// after the change is durable, for every registration and deregistration
// (see ChangeEvent). It must not block.
func WithOnChange(fn func(ChangeEvent)) Option {
	return func(s *Server) error {
		s.onChange = fn
		return nil
	}
}
