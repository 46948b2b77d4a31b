// Package directory is the IICP-DIR directory server (iicp-dir.md,
// iicp-core.md §2, §4, §5, §11): nodes register, heartbeat and are
// discovered by intent URN. It speaks this protocol, under both /v1 and
// /api/v1:
//
//	POST   /v1/register          REGISTER → 201 ACK {node_id, node_token (once), observed_source_ip}
//	                             validation 422; non-routable endpoint 422 IICP-E035; liveness
//	                             probe GET {endpoint}/iicp/health over verified TLS 1.3 (5 s) →
//	                             422 liveness_failed; 60/60 s per source (IPv6 /64) charged
//	                             only for well-formed bodies → 429 retry_after; a refresh
//	                             proves ownership with current_node_token and rotates it,
//	                             without it 403 IICP-E049/E050; operator_delegation verified
//	DELETE /v1/register          deregister (Bearer) → {"deregistered":true}; also POST /v1/deregister
//	POST   /v1/heartbeat         PING (Bearer) → PONG {ok, next_heartbeat_ms}; 401 / 404
//	GET    /v1/discover          scored NODELIST for ?intent= (qos, region, limit ≤ 50,
//	                             min_reputation, modality, cip_capable, view=public)
//	GET    /v1/me                the owner's current observed address (Bearer)
//	GET    /v1/node/{id}         node detail with health block
//	GET    /v1/registry/nodes/{id|prefix}  public fields only
//	GET    /v1/bootstrap         freshest live peers with their extensions (meshnode.p2p)
//	GET    /v1/stats             active nodes, mesh_health, sdk adoption
//	GET    /v1/directory-key     Ed25519 public key (hex)
//	POST   /v1/consumer-token    short-lived consumer token (Bearer) → 201
//	POST   /v1/membership        mesh membership credential (Bearer) → 201 (meshnode addition)
//	GET    /v1/membership/revoked  node_ids deregistered within one membership lifetime
//	POST   /v1/dispatch/ticket   prompt-free signed route ticket → 201, 404 no_route_available
//	GET    /v1/probe             SSRF-guarded TCP reachability (422 private_address)
//	POST   /v1/peers             Ed25519-signed peer exchange
//	GET    /iicp/health, /readyz  503 while the store refuses writes
//	GET    /metrics              meshnode_directory_*
//
// Every error is the JSON envelope {"error":{"code","message"}}.
//
// Wrong node tokens are throttled per source and logged at WARN. The
// listener caps connections per source; outbound fetches made for a caller
// (liveness probe, /v1/probe) use internal/httpx's SSRF-guarded dialer.
//
// State lives in SQLite (modernc.org/sqlite, WAL, synchronous=FULL, one
// connection, files 0600) and is
// served from an in-memory index keyed by node, intent, id prefix and token
// lookup index. Each intent also keeps a ranking: its nodes sorted by score
// upper bound, updated incrementally on every registration and heartbeat,
// which discover walks from the top with an exact early stop (rank.go),
// writing cached per-node JSON. Probation (probation.go) and outcome-v2
// reputation (reputation.go) follow the decisions in docs/spec-decisions.md. Registrations and deregistrations are durable before they
// are acknowledged and all pass through one write path (store.apply) whose
// OnChange hook feeds federation; heartbeat state is written behind in
// batches. Node tokens are 32 random bytes, stored as a bcrypt hash plus an
// HMAC-SHA256 lookup index keyed with a directory secret.
//
// Consumer tokens and route tickets are minted with wire/token (the one
// token format nodes verify); consumer tokens live at most
// token.MaxConsumerLifetime and carry a jti (single use at nodes) when the
// caller asks with "single_use": true.
//
// The package imports wire, wire/token, internal/tlsutil, internal/httpx
// and internal/paths; it must not import node, mesh or cmd.
package directory
