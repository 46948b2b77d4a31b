// Package node owns the task engine: admission (max_concurrent, qos wait,
// priority), idempotency, deadlines, authorization (node token, consumer
// tokens, peer allowlist, open mode) and task metrics. Every transport (HTTP
// bridge, libp2p stream, native TCP) hands the engine a validated wire.Call
// and a wire.Caller and gets a wire.Response back, so the rules live once.
//
// node may import wire and node/backend. It must not import net/http servers,
// dirbridge, mesh or libp2p: transports depend on the engine, never the reverse.
package node
