package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// CurrentVersion is the only config schema version this build reads.
const CurrentVersion = 1

// Profile names.
const (
	ProfileHome   = "home"
	ProfileServer = "server"
	ProfileTest   = "test"
)

// Config is the whole configuration file.
type Config struct {
	// Version is the schema version; must be CurrentVersion.
	Version int `toml:"version"`
	// Profile selects the defaults the rest of the file overrides.
	Profile string `toml:"profile"`

	Node      Node      `toml:"node"`
	HTTP      HTTP      `toml:"http"`
	OpenAI    OpenAI    `toml:"openai"`
	Backend   Backend   `toml:"backend"`
	Directory Directory `toml:"directory"`
	Server    Server    `toml:"directory_server"`
	Mesh      Mesh      `toml:"mesh"`
	Admin     Admin     `toml:"admin"`
	MCP       MCP       `toml:"mcp"`
	Log       Log       `toml:"log"`
}

// Node is what the node advertises and how it admits work.
type Node struct {
	// Region is the advertised region label (REGISTER region).
	Region string `toml:"region"`
	// MaxConcurrent is limits.max_concurrent: tasks run at once.
	MaxConcurrent int `toml:"max_concurrent"`
	// Endpoint is the public base URL registered with directories; empty
	// means derived from the HTTP bridge's bound address.
	Endpoint string `toml:"endpoint"`
	// Dev allows plaintext HTTP and loopback/private endpoints (development).
	Dev bool `toml:"dev"`
	// ShutdownTimeout bounds graceful shutdown (deregister, drain tasks).
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
}

// HTTP is the node's HTTP bridge (POST /v1/task, GET /iicp/health, /metrics).
type HTTP struct {
	// Listen is host:port for the bridge.
	Listen string `toml:"listen"`
	// TLSCert and TLSKey are the bridge's certificate (PEM). Empty outside
	// dev mode means a self-signed certificate kept in the state directory.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// ACMEDomains get a publicly trusted certificate for the bridge from an
	// ACME CA (TLS-ALPN-01 on the bridge's listener, cache <state>/acme);
	// the first one names the registered endpoint when node.endpoint is
	// empty. Replaces tls_cert/tls_key and the self-signed fallback.
	ACMEDomains []string `toml:"acme_domains"`
	// ACMEDirectory is the CA's ACME directory URL; empty: Let's Encrypt.
	ACMEDirectory string `toml:"acme_directory"`
	// ACMEEmail is the ACME account contact (optional).
	ACMEEmail string `toml:"acme_email"`
}

// OpenAI is the node's OpenAI-compatible API (route/openai): agents and
// tools that speak OpenAI call the mesh through it.
type OpenAI struct {
	// Enabled serves the API.
	Enabled bool `toml:"enabled"`
	// Listen is host:port. A non-loopback address requires an API key.
	Listen string `toml:"listen"`
	// APIKeyEnv names the environment variable holding the API key
	// clients must send as "Authorization: Bearer <key>"; empty or unset
	// means no key (loopback only). The key never goes in this file.
	APIKeyEnv string `toml:"api_key_env"`
	// AllowPlaintext lets the gateway send prompts to directory-listed
	// nodes without an IICP-CX key (iicp-confidentiality.md §6 opt-in).
	AllowPlaintext bool `toml:"allow_plaintext"`
}

// Backend is the inference backend.
type Backend struct {
	// URL is an OpenAI-compatible base URL (Ollama, vLLM, llama.cpp...).
	// Empty means auto: Ollama on 127.0.0.1:11434 when it answers, else the
	// built-in echo backend.
	URL string `toml:"url"`
	// Detect is the host:port probed for an Ollama server when URL is empty
	// ("off" disables autodetection: the echo backend serves). Tests set
	// "off" so they never talk to a service they did not start.
	Detect string `toml:"detect"`
	// APIKeyEnv names the environment variable holding the backend API key;
	// the key itself never goes in this file.
	APIKeyEnv string `toml:"api_key_env"`
	// Models restricts the advertised models; empty means the backend's list.
	Models []string `toml:"models"`
	// Timeout bounds one backend request.
	Timeout Duration `toml:"timeout"`
}

// Directory is how the node uses IICP-DIR directories.
type Directory struct {
	// URLs are the directories to register with. Empty (and Disabled false)
	// means dev mode: an in-process directory on loopback.
	URLs []string `toml:"urls"`
	// Disabled runs without any directory (operator-token-only node).
	Disabled bool `toml:"disabled"`
	// EmbeddedListen is the in-process directory's address when URLs is empty.
	EmbeddedListen string `toml:"embedded_listen"`
	// HeartbeatFallback is used until a directory names next_heartbeat_ms.
	HeartbeatFallback Duration `toml:"heartbeat_fallback"`
	// BackoffMin and BackoffMax bound the jittered retry backoff while a
	// directory is unreachable.
	BackoffMin Duration `toml:"backoff_min"`
	BackoffMax Duration `toml:"backoff_max"`
	// TokenRefresh is how often the node rotates its node_token by
	// re-registering with current_node_token (0 disables rotation).
	TokenRefresh Duration `toml:"token_refresh"`
	// RequestTimeout bounds one directory HTTP request.
	RequestTimeout Duration `toml:"request_timeout"`
	// CAFile is an extra PEM root certificate for directory TLS (a
	// directory with a self-signed certificate); the system roots still apply.
	CAFile string `toml:"ca_file"`
	// Replicas are read-only directories of the federation of the first
	// URL (its replicas): discover reads go to the nearest healthy one,
	// registrations and heartbeats stay with the seed.
	Replicas []string `toml:"replicas"`
	// DiscoverReplicas learns each directory's replicas from its
	// /.well-known/iicp-replicas.json.
	DiscoverReplicas bool `toml:"discover_replicas"`
	// ReplicaProbeInterval is how often every directory's health and
	// round-trip time are measured to choose where reads go.
	ReplicaProbeInterval Duration `toml:"replica_probe_interval"`
}

// Server configures `meshnode directory` and the embedded directory.
type Server struct {
	// Listen is host:port for `meshnode directory`.
	Listen string `toml:"listen"`
	// DB is the SQLite database path; empty means directory.db in the state dir.
	DB string `toml:"db"`
	// HeartbeatInterval is the next_heartbeat_ms the directory hands out.
	HeartbeatInterval Duration `toml:"heartbeat_interval"`
	// StaleAfter removes silent nodes from discover (iicp-dir.md §3.2: 90 s).
	StaleAfter Duration `toml:"stale_after"`
	// ProbeInterval is how often the directory re-probes each registered
	// endpoint (iicp-dir.md §3.9c/§3.14: 300 s, the minimum outside dev
	// mode); 0 turns active probing off.
	ProbeInterval Duration `toml:"probe_interval"`
	// MembershipTTL is the lifetime of the mesh membership credentials the
	// directory issues (nodes renew at half-life; 2s..24h).
	MembershipTTL Duration `toml:"membership_ttl"`
	// RegisterRateLimit is how many REGISTERs one source IP may send per
	// minute (iicp-dir.md §3.1: 60). Raise it only for a load test or a
	// directory behind a NAT that many nodes share.
	RegisterRateLimit int `toml:"register_rate_limit"`
	// BcryptCost is the node-token hash cost (DIR-REG-07; 10). Lower costs
	// only speed up mass registration in benchmarks.
	BcryptCost int `toml:"bcrypt_cost"`
	// MemoryLimitMiB is the Go runtime's soft memory limit for `meshnode
	// directory` (GOMEMLIMIT, which overrides it when set): the garbage
	// collector runs harder as the heap nears it instead of letting it
	// grow to twice the live index. 0 turns it off.
	MemoryLimitMiB int `toml:"memory_limit_mib"`
	// TLSCert and TLSKey are the HTTPS certificate; outside dev mode the
	// directory always serves HTTPS, self-signed when these are empty.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// ACMEDomains get a publicly trusted certificate from an ACME CA
	// (TLS-ALPN-01 on the listener, which must be reachable on port 443 of
	// each name); replaces tls_cert/tls_key and the self-signed fallback.
	ACMEDomains []string `toml:"acme_domains"`
	// ACMEDirectory is the CA's ACME directory URL; empty: Let's Encrypt.
	ACMEDirectory string `toml:"acme_directory"`
	// ACMEEmail is the ACME account contact (optional).
	ACMEEmail string `toml:"acme_email"`
	// ProbationMinTasks and ProbationMinAge are the probation rule: a node
	// leaves probation with this many completed tasks (reported in
	// heartbeat metrics batches) once registered this long (0: no minimum
	// age). docs/spec-decisions.md "probation".
	ProbationMinTasks int64    `toml:"probation_min_tasks"`
	ProbationMinAge   Duration `toml:"probation_min_age"`
	// MaxNodesPerOperator caps the nodes one verified operator key may have
	// registered at once (ADR-045 per-operator limit); 0 = no cap.
	MaxNodesPerOperator int `toml:"max_nodes_per_operator"`
	// ReporterMinAge is how long a node must have been registered before
	// its telemetry counts toward a quorum and its audit reports become
	// integrity evidence (iicp-semantics.md §11.7/§11.8: 3 days). Lower
	// only with --dev (0: none).
	ReporterMinAge Duration `toml:"reporter_min_age"`
	// TelemetryAlpha is the EMA factor of proxy-observed latency
	// (iicp-telemetry.md §T4.2: 0.1, within [0.05, 0.3]).
	TelemetryAlpha float64 `toml:"telemetry_alpha"`
}

// Mesh is the libp2p side.
type Mesh struct {
	// Enabled turns the libp2p host on.
	Enabled bool `toml:"enabled"`
	// Listen are multiaddrs to listen on (QUIC first).
	Listen []string `toml:"listen"`
	// Bootstrap are extra peers to dial besides those the directory returns.
	Bootstrap []string `toml:"bootstrap"`
	// ConnsLow and ConnsHigh are the connection manager watermarks; home
	// defaults are conservative so a node never floods a home router.
	ConnsLow  int `toml:"conns_low"`
	ConnsHigh int `toml:"conns_high"`
	// AdvertInterval is how often the node re-gossips its advert (load,
	// capabilities, addresses); it trades gossip traffic for how soon new
	// peers learn the node. Peers expire after 90 s (iicp-semantics.md §9).
	AdvertInterval Duration `toml:"advert_interval"`
	// MDNS announces the node on the local network by mDNS and dials the
	// meshnode nodes found there: a home mesh needs no directory and no
	// configured address. On in the home profile, off in server and test.
	MDNS bool `toml:"mdns"`
}

// Admin is the loopback admin endpoint the CLI talks to.
type Admin struct {
	// Listen must be a loopback host:port (port 0 picks a free one; the
	// bound address is written to the state dir).
	Listen string `toml:"listen"`
}

// Log configures log/slog.
type Log struct {
	// Level is the default level: debug, info, warn, error.
	Level string `toml:"level"`
	// Format is text or json.
	Format string `toml:"format"`
	// Levels overrides the level per subsystem (app, node, backend, http,
	// directory, dirclient, mesh, libp2p, admin): the names printed as
	// subsystem=<name> in log lines.
	Levels map[string]string `toml:"levels"`
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText implements encoding.TextMarshaler.
// Whole minutes and hours drop their zero tails ("2m", "24h", not "24h0m0s").
func (d Duration) MarshalText() ([]byte, error) {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return []byte(s), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. \"30s\", \"5m\")", b)
	}
	*d = Duration(v)
	return nil
}

// ErrNotFound reports a missing config file.
var ErrNotFound = errors.New("config file not found")

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// LoadOrInit loads path, or on first run writes the commented default file
// for profile there (0600) and returns its defaults. created reports a
// first run.
func LoadOrInit(path, profile string) (cfg *Config, created bool, err error) {
	cfg, err = Load(path)
	if err == nil {
		return cfg, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	text, err := DefaultFile(profile)
	if err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("creating config: %w", err)
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("writing config: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("writing config: %w", err)
	}
	cfg, err = Parse(text)
	if err != nil {
		return nil, false, fmt.Errorf("default config: %w", err)
	}
	return cfg, true, nil
}

// header is the part of the file read before the profile's defaults exist.
type header struct {
	Version *int   `toml:"version"`
	Profile string `toml:"profile"`
}

// Parse decodes and validates a config document: the profile named in the
// file chooses the defaults, then the document overrides them strictly.
func Parse(data []byte) (*Config, error) {
	var h header
	if err := toml.Unmarshal(data, &h); err != nil {
		return nil, describe(err)
	}
	if h.Version == nil {
		return nil, fmt.Errorf("missing `version = %d` at the top of the file", CurrentVersion)
	}
	if *h.Version != CurrentVersion {
		return nil, fmt.Errorf("config version %d is not supported by this build (want %d)", *h.Version, CurrentVersion)
	}
	if h.Profile == "" {
		h.Profile = ProfileHome
	}
	cfg, err := Defaults(h.Profile)
	if err != nil {
		return nil, err
	}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, describe(err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// describe turns go-toml errors into one-line messages with positions.
func describe(err error) error {
	// StrictMissingError unwraps to DecodeErrors, so it is checked first.
	var se *toml.StrictMissingError
	if errors.As(err, &se) {
		var keys []string
		for _, e := range se.Errors {
			row, _ := e.Position()
			keys = append(keys, fmt.Sprintf("%s (line %d)", strings.Join(e.Key(), "."), row))
		}
		return fmt.Errorf("unknown key(s): %s", strings.Join(keys, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Errorf("line %d column %d: %v", row, col, de.Error())
	}
	return err
}
