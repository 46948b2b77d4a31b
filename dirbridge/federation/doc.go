// Package federation implements IICP directory federation
// (iicp-federated-directory.md, S.13): the Genesis Seed's signed,
// hash-chained, append-only event log and its HTTP surface
// (GET /v1/events, GET /v1/snapshot, /.well-known/did.json,
// /.well-known/iicp-replicas.json, POST /v1/replicas/register and
// /deregister), replica sync (snapshot + event tail + GossipSub push, every
// event verified before it is applied, progress persisted), the replica's
// HTTP surface (signed discovery, 307 write gate, lag gate), and
// FailoverTransport for clients that know several directories.
//
// Seed: NewSeed(ctx, SeedConfig) → Emit(ctx, Change...) from the directory's
// OnChange hook, Handler() mounted for SeedRoutes, Serve(ctx) prunes.
// Replica: NewReplica(ctx, ReplicaConfig) → Serve(ctx) syncs,
// Handler(next) serves (next = the directory's handler, or nil for the
// built-in read API over the replicated state).
//
// federation imports wire, libp2p pubsub and SQLite. It must not import
// dirbridge/directory, mesh, node or cmd: the composition root adapts the
// directory's ChangeEvent to Change and a Sink to the directory's store.
package federation
