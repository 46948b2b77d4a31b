// Package route is the caller side of meshnode, once: it runs a task on
// the best node it can find over every path it knows, for the daemon's
// `meshnode call`, the CLI's --directory path and Go programs.
//
// A Router asks its finders for candidate targets in order (by default the
// mesh peer table and DHT first, then directory discover; LAN and gateway
// finders plug in the same way), and runs one attempt loop over them
// (iicp-semantics.md §6): at most 3 attempts, each with a fresh call_id and
// the same task_id, a backoff with jitter between transient failures
// (internal/retry), capacity_exceeded switching at once (§2.2), a circuit
// breaker per target (§7.1, internal/breaker), one classifier for final
// versus retryable answers (wire.RetryElsewhere), a credential per target
// (each attempt carries a consumer token minted for its own node), and an
// optional local fallback (§8 step 4). The Result names the path (mesh,
// http, local) and the node that served.
//
//	r, _ := route.New([]route.Finder{route.MeshFinder{M: m}, route.DirectoryFinder{C: dc}},
//		route.WithTransport(route.PathMesh, route.MeshTransport{M: m}),
//		route.WithTransport(route.PathHTTP, route.HTTPTransport{}),
//		route.WithCredential(tokenFor))
//	res, err := r.Call(ctx, call, route.Query{})
//
// CallStream runs the same loop under the service-lifecycle profile: each
// target whose transport can stream (MeshTransport, HTTPTransport, the
// daemon's local engine) is asked for accepted/partial/terminal events and
// the partial result chunks reach the caller as they are generated; once a
// chunk has been delivered the attempt is final (ErrStreamBroken, never a
// retry that would repeat output) — but a stream that breaks is first
// resumed on the same node from the last event seen (ResumeTransport),
// and an attempt the caller abandons is cancelled (CancelTransport, or the
// mesh's in-stream CONTROL). LocalOffer lists this node's models
// beside the finders', and Models merges what finders offer into the model
// catalogue (route/openai's GET /v1/models).
//
// A Go program with only a directory uses route.ForDirectory; one that
// runs no node uses ForAgent, with a directory or a bootstrap node as its
// gateway (gateway.go). The HTTP
// path seals payloads with IICP-CX and reads every deployed SDK dialect
// (dirbridge/dirclient.PostTask); the mesh path rides the libp2p secure
// channel.
//
// route imports wire, mesh, dirbridge/dirclient and internal leaves; never
// internal/daemon.
package route
