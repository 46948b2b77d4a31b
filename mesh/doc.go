// Package mesh owns the libp2p side of meshnode: the host (QUIC first, TCP
// fallback), the Kademlia DHT under meshnode's own protocol prefix, signed
// gossip adverts and the peer table, the /iicp/task/1.0.0 stream protocol
// (server and client), peer selection, retry and circuit breaking.
//
// mesh may import wire and libp2p. It reaches the task engine only through
// the small interface it declares (TaskEngine); it must not import node,
// dirbridge or cmd.
//
// # Composition
//
//	h, _ := mesh.NewHost(ctx, identityKey, mesh.HostConfig{NAT: true, MaxConcurrent: n})
//	m, _ := mesh.New(h, mesh.Config{NodeID: id, Capabilities: caps, MaxConcurrent: n, Load: engine.Load}, engine)
//	_ = m.Start()                                     // attaches DHT, gossip, task handlers (New only builds)
//	go m.Serve(ctx)                                   // until ctx ends; then closes the mesh, not the host
//	reg.Extensions[mesh.P2PExtensionKey] = mesh.P2PExtension(h)
//	m.AddBootstrapPeers(infosFromDiscover)            // via m.ParseDirectoryPeer(nodeID, ext)
//	resp, info, err := m.Call(ctx, call, mesh.CallOptions{Credential: tokenFor})
//	if errors.Is(err, mesh.ErrNoCandidate) { /* directory discover + HTTP */ }
//
// # Finding peers
//
// Bootstrap peers come from configuration and from the meshnode.p2p
// extension of directory results, never from the IPFS defaults. With
// Config.MDNS the node also announces itself on the LAN (mDNS service
// _meshnode._udp) and dials the meshnode peers found there (mdns.go); a
// peer found that way is trusted no more than any other. The DHT
// speaks /meshnode/kad/1.0.0; every served intent is provided under
// IntentCID(intent) and re-provided hourly. Every node publishes an Advert
// on the gossip topic /meshnode/adverts/1.0.0 every AdvertInterval (after
// start at AdvertInterval/8, doubling), at once when its load moves by
// LoadChangeThreshold, and 250 ms after a peer joins the topic (a burst of
// three, then one per AdvertInterval/4). Addresses no other host can dial
// (link-local, unspecified, and loopback unless the whole mesh is on
// loopback) are neither published nor accepted from others.
// Adverts are integer-keyed CBOR in StrictSign pubsub messages; the topic
// validator rejects malformed, unsigned, oversized and wrong-origin adverts
// (the advert's peer_id must be the signer, and its node_id the one the
// signer's key derives to, NodeIDOf) and ignores stale, replayed,
// future-dated and rate-limited ones. The PeerTable merges adverts by
// (peer, seq), newest wins, and forgets peers silent for PeerTTL (90 s).
// An advert may carry the node's operator delegation (key 13): it is kept,
// as PeerInfo.Operator, only when it verifies for the advert's node_id.
// Task streams carry the caller's delegation in HEADERS (key 3); a caller
// delegated by this node's own operator key (SetOperator) is admitted
// without a directory (operator.go).
//
// # Task protocol
//
// One stream per task (iicp-framing.md §10.4), IICP 12-byte frames:
//
//	client → [HEADERS 0xF0 {1: consumer_token}]  CALL 0x05
//	server → RESPONSE 0x06 | CLOSE 0x07 {1: reason, 2: message}
//
// /iicp/task/1.0.0 carries strict native CBOR, /iicp/task-json/1.0.0 the
// JSON bodies. The server caps the CALL frame (MaxCallBytes, 1 MiB) before
// allocating, derives its deadline from constraints.timeout_ms, runs the
// engine with wire.Caller{PeerID, PeerNodeID, Transport: "quic", RemoteIP,
// ConsumerToken}, answers one frame and closes; any I/O error resets.
// /iicp/task/1.1.0 (streampool.go) is the native protocol on a stream that
// outlives its task: after a buffered call's RESPONSE the server reads the
// caller's next request on it, and callers keep idle streams per peer.
//
// A native CALL that requires the service-lifecycle profile (constraints
// required_profiles in key 21) is answered with an OBSERVE frame carrying
// the `accepted` envelope, RESPONSE frames with status "partial" and
// is_final=false, then the terminal RESPONSE, all with the key-13 envelope
// (taskstream.go); CallOptions.OnEvent receives the events in order after
// the receiver's checks (sequence, finality, the answerer's node_id). A
// CONTROL cancel frame after the CALL (or on its own stream, Mesh.Cancel)
// cancels the task; a new stream whose HEADERS carry resume_after resumes
// it (CallOptions.ResumeAfter); a broken stream is a lost caller, whose
// task the engine keeps for a resume grace. The gateway protocol
// (gateway.go, /meshnode/gateway/1.0.0) carries tasks from programs that
// run no node to a node that routes them (ServeGateway, DialGateway).
// Frame-level faults follow the §9.6 disposition table. Decisions are in
// docs/spec-decisions.md, section "mesh".
//
// # Direct calls
//
// Call ranks eligible peers (table ∪ DHT) by a local selection value (the
// iicp-semantics.md §3.1 formula on the peer's advert blended with
// measured RTT), retries per §6.1 on other peers, switches at once on
// capacity_exceeded (§2.2), and skips peers whose circuit is open (§7.1:
// 5 failures, 30 s, single half-open probe). At most 128 streams per peer
// are in flight from one node (later calls wait); the serving host admits
// twice that per peer, so the engine, not the resource manager, refuses
// excess work. A stream reset for a resource limit (0x1002) counts as
// capacity_exceeded. A RESPONSE whose node_id is not the answering peer's
// (NodeIDOf of the authenticated stream) is ErrForgedResponse, never an
// answer; the server hands the engine the caller's proven node_id
// (wire.Caller.PeerNodeID). The server closes each stream as soon as its
// RESPONSE is written.
package mesh
