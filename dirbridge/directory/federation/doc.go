// Package federation implements IICP directory federation
// (iicp-federated-directory.md, S.13): the Genesis Seed's signed,
// hash-chained, append-only event log and its HTTP surface
// (GET /v1/events, GET /v1/snapshot, /.well-known/did.json,
// /.well-known/iicp-replicas.json, POST /v1/replicas/register and
// /deregister), replica sync (snapshot + event tail pushed by long-poll —
// GET /v1/events and /v1/liveness with wait=N, held by the seed until there
// is news (seedpush.go, replicapush.go) — plus optional GossipSub push,
// every event verified before it is applied, progress persisted), the
// replica's HTTP surface (signed discovery, 307 write gate, lag gate).
// Clients follow the 307s themselves (dirbridge/dirclient, DIR-FED-05/06).
//
// Seed: NewSeed(ctx, SeedConfig) → Emit(ctx, Change...) from the directory's
// OnChange hook, Handler() mounted for SeedRoutes, Serve(ctx) prunes and
// publishes signed liveness digests (liveness.go: heartbeats never enter
// the chain, ADR-033, yet replicas must judge last_seen).
// Replica: NewReplica(ctx, ReplicaConfig) → Serve(ctx) syncs into its
// Sink (the directory's store), Handler(next) gates and signs the
// directory's routes (next). The replica has no read API of its own:
// discovery is always the directory's, over the verified state.
//
// Composition (what `meshnode directory` calls): NewSeedDirectory and
// NewReplicaDirectory wrap a real dirbridge/directory server — the seed
// feeds every registration and deregistration into the log and mounts the
// federation routes under /v1 and /api/v1; the replica applies verified
// changes and liveness to the directory's store, so it serves the full
// discover — each with Listen(ctx) (binds the directory and the gossip
// host, then opens the log or replica state: the constructors bind and
// start nothing), Serve(ctx), Addr(), URL() and Handler().
//
// federation imports wire, dirbridge/directory (the composition files
// dir*.go only), libp2p pubsub and SQLite. It must not import mesh, node
// or cmd; directory must not import federation.
package federation
