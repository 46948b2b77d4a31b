package config

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"

	"github.com/pelletier/go-toml/v2"
)

// fileTemplate is the commented config written on first run. Every key is
// present, commented out, showing the profile's default, so the file
// documents itself and a later release's better defaults still apply to
// keys the operator never touched. TestDefaultFileCoversEveryKey keeps it
// complete.
const fileTemplate = `# meshnode configuration (TOML). Reference: docs/config.md
# Lines starting with "# key =" show the default of the selected profile;
# uncomment and edit to change one. Command-line flags (and their MESHNODE_*
# environment twins) override this file for one run without changing it.

version = 1

# Defaults to build on: "home" (loopback, conservative), "server" (listens on
# all interfaces, more capacity, JSON logs) or "test" (loopback, free ports,
# short timers).
profile = {{v .Profile}}

[node]
# Region label advertised to directories.
# region = {{v .Node.Region}}
# Tasks run at once (limits.max_concurrent); more wait or get capacity_exceeded.
# max_concurrent = {{v .Node.MaxConcurrent}}
# Public base URL registered with directories; empty = the HTTP bridge address.
# endpoint = {{v .Node.Endpoint}}
# Development mode: plaintext HTTP and loopback/private endpoints allowed.
# dev = {{v .Node.Dev}}
# Upper bound for a graceful shutdown (deregister, finish running tasks).
# shutdown_timeout = {{v .Node.ShutdownTimeout}}

[http]
# The HTTP bridge: POST /v1/task, GET /iicp/health, GET /metrics.
# listen = {{v .HTTP.Listen}}
# TLS certificate and key (PEM). Empty outside dev mode = a self-signed
# certificate generated in the state directory.
# tls_cert = {{v .HTTP.TLSCert}}
# tls_key = {{v .HTTP.TLSKey}}
# Publicly trusted certificate from an ACME CA (Let's Encrypt by default) for
# these DNS names: TLS-ALPN-01 on this listener (the CA must reach it on port
# 443), cached in <state>/acme. Replaces tls_cert/tls_key; the first name is
# the registered endpoint unless node.endpoint says otherwise.
# acme_domains = {{v .HTTP.ACMEDomains}}
# acme_directory = {{v .HTTP.ACMEDirectory}}
# acme_email = {{v .HTTP.ACMEEmail}}

[openai]
# The OpenAI-compatible API (POST /v1/chat/completions, /v1/completions,
# /v1/embeddings, GET /v1/models), answered by the best node of the mesh.
# enabled = {{v .OpenAI.Enabled}}
# A non-loopback address requires an API key.
# listen = {{v .OpenAI.Listen}}
# Name of the environment variable holding the API key clients send as
# "Authorization: Bearer <key>" (the key itself never goes in this file).
# api_key_env = {{v .OpenAI.APIKeyEnv}}
# Allow prompts to directory-listed nodes without an IICP-CX key.
# allow_plaintext = {{v .OpenAI.AllowPlaintext}}

[backend]
# OpenAI-compatible base URL, e.g. "http://127.0.0.1:11434" (Ollama) or
# "http://127.0.0.1:8000" (vLLM). Empty = Ollama on 127.0.0.1:11434 when it
# answers, else the built-in echo backend.
# url = {{v .Backend.URL}}
# Where to look for Ollama when url is empty (host:port), or "off" to skip
# autodetection and serve the echo backend.
# detect = {{v .Backend.Detect}}
# Name of the environment variable that holds the backend API key (the key
# itself never goes in this file).
# api_key_env = {{v .Backend.APIKeyEnv}}
# Models to advertise; empty = every model the backend lists.
# models = {{v .Backend.Models}}
# Upper bound for one backend request.
# timeout = {{v .Backend.Timeout}}

[directory]
# IICP-DIR directories to register with. Empty = an in-process directory on
# loopback (dev mode), so a fresh machine works with nothing else running.
# urls = {{v .Directory.URLs}}
# Run without any directory; the node accepts a locally generated operator
# token (see "meshnode token").
# disabled = {{v .Directory.Disabled}}
# Address of the in-process directory when urls is empty.
# embedded_listen = {{v .Directory.EmbeddedListen}}
# Heartbeat interval until a directory names one (next_heartbeat_ms).
# heartbeat_fallback = {{v .Directory.HeartbeatFallback}}
# Jittered retry backoff bounds while a directory is unreachable.
# backoff_min = {{v .Directory.BackoffMin}}
# backoff_max = {{v .Directory.BackoffMax}}
# Rotate the node token this often (re-register with current_node_token); "0s" = never.
# token_refresh = {{v .Directory.TokenRefresh}}
# Upper bound for one directory request.
# request_timeout = {{v .Directory.RequestTimeout}}
# Extra PEM root certificate trusted for directory TLS (self-signed directory).
# ca_file = {{v .Directory.CAFile}}
# Read-only replicas of the first directory's federation. Discover reads go
# to the nearest healthy replica (then the seed); registration and
# heartbeats always go to the seed.
# replicas = {{v .Directory.Replicas}}
# Also learn replicas from each directory's /.well-known/iicp-replicas.json.
# discover_replicas = {{v .Directory.DiscoverReplicas}}
# How often directory health and round-trip time are measured.
# replica_probe_interval = {{v .Directory.ReplicaProbeInterval}}

[directory_server]
# Used by "meshnode directory" (and, for timers, the in-process directory).
# listen = {{v .Server.Listen}}
# SQLite database; empty = directory.db in the state directory.
# db = {{v .Server.DB}}
# Heartbeat interval handed to nodes (next_heartbeat_ms).
# heartbeat_interval = {{v .Server.HeartbeatInterval}}
# Silent nodes leave discover after this long (iicp-dir.md §3.2: 90s).
# stale_after = {{v .Server.StaleAfter}}
# Re-probe every registered node's endpoint this often (iicp-dir.md §3.9c:
# 5m, also the minimum outside --dev); a node failing two probes in a row
# leaves discover until it answers again. 0s turns it off.
# probe_interval = {{v .Server.ProbeInterval}}
# Probation: a node leaves it with this many completed tasks once registered
# this long (0s: no minimum age).
# probation_min_tasks = {{v .Server.ProbationMinTasks}}
# probation_min_age = {{v .Server.ProbationMinAge}}
# Nodes one verified operator key may have registered at once (0 = no cap).
# max_nodes_per_operator = {{v .Server.MaxNodesPerOperator}}
# Telemetry and audit reports count only from nodes registered this long
# (iicp-semantics.md §11.7/§11.8: 72h; shorter only with --dev, 0s = none)
# with reputation >= 0.55; observed latency moves by an EMA with this alpha.
# reporter_min_age = {{v .Server.ReporterMinAge}}
# telemetry_alpha = {{v .Server.TelemetryAlpha}}
# Lifetime of the mesh membership credentials nodes present to each other
# (they renew at half-life; the mesh keeps working this long without the
# directory). 2s..24h.
# membership_ttl = {{v .Server.MembershipTTL}}
# REGISTERs one source IP may send per minute (iicp-dir.md §3.1). Raise it
# only for a load test or when many nodes share one NAT address.
# register_rate_limit = {{v .Server.RegisterRateLimit}}
# bcrypt cost of stored node tokens (DIR-REG-07). Lower only in benchmarks.
# bcrypt_cost = {{v .Server.BcryptCost}}
# Soft memory limit of "meshnode directory" in MiB (the GOMEMLIMIT
# environment variable overrides it); 0 turns it off. Raise it for
# directories well beyond 100k nodes.
# memory_limit_mib = {{v .Server.MemoryLimitMiB}}
# TLS certificate and key (PEM). Outside dev mode the directory always
# serves HTTPS: without these it uses a self-signed certificate kept in the
# state directory (nodes then need directory.ca_file).
# tls_cert = {{v .Server.TLSCert}}
# tls_key = {{v .Server.TLSKey}}
# Publicly trusted certificate from an ACME CA (Let's Encrypt by default) for
# these DNS names, via TLS-ALPN-01 on the listener (reachable on port 443);
# cached in <state>/acme. Replaces tls_cert/tls_key.
# acme_domains = {{v .Server.ACMEDomains}}
# acme_directory = {{v .Server.ACMEDirectory}}
# acme_email = {{v .Server.ACMEEmail}}

[mesh]
# The libp2p host (QUIC first, TCP fallback).
# enabled = {{v .Mesh.Enabled}}
# listen = {{v .Mesh.Listen}}
# Extra peers to dial besides those the directory returns.
# bootstrap = {{v .Mesh.Bootstrap}}
# Connection manager watermarks.
# conns_low = {{v .Mesh.ConnsLow}}
# conns_high = {{v .Mesh.ConnsHigh}}
# How often the node re-gossips its advert (1s-30s).
# advert_interval = {{v .Mesh.AdvertInterval}}
# Find meshnode nodes on the local network by mDNS (no directory needed);
# they are served only when delegated by this node's operator key.
# mdns = {{v .Mesh.MDNS}}

[admin]
# Loopback endpoint for "meshnode status/peers/call/token"; port 0 picks a
# free port, written to the state directory with a 0600 admin token.
# listen = {{v .Admin.Listen}}

[mcp]
# MCP server (Streamable HTTP at http://<listen>/mcp): the mesh's intents as
# tools (llm_chat, llm_embedding…) for Claude Desktop and agent frameworks.
# enabled = {{v .MCP.Enabled}}
# Loopback needs no key; any other address needs api_key_file.
# listen = {{v .MCP.Listen}}
# File (0600) holding the key clients send as "Authorization: Bearer <key>".
# api_key_file = {{v .MCP.APIKeyFile}}

[log]
# debug, info, warn or error.
# level = {{v .Log.Level}}
# text or json.
# format = {{v .Log.Format}}

[log.levels]
# Per-subsystem levels: app, node, backend, http, directory, dirclient, mesh,
# libp2p, admin, mcp, openai (the subsystem=<name> printed in each log line; libp2p
# defaults to at least warn).
#example: mesh = "debug"
`

// tomlValue renders one value as TOML.
func tomlValue(v any) (string, error) {
	b, err := toml.Marshal(map[string]any{"v": v})
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	s = strings.TrimPrefix(s, "v = ")
	if s == "" || strings.HasPrefix(s, "v =") {
		return "", fmt.Errorf("cannot render %T", v)
	}
	return s, nil
}

var tmpl = template.Must(template.New("config").Funcs(template.FuncMap{
	"v": func(v any) (string, error) {
		// Empty slices render as [] rather than being omitted.
		if s, ok := v.([]string); ok && len(s) == 0 {
			return "[]", nil
		}
		return tomlValue(v)
	},
}).Parse(fileTemplate))

// DefaultFile renders the commented first-run config for profile.
func DefaultFile(profile string) ([]byte, error) {
	cfg, err := Defaults(profile)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, cfg); err != nil {
		return nil, fmt.Errorf("rendering default config: %w", err)
	}
	return buf.Bytes(), nil
}
