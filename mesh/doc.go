// Package mesh owns the libp2p side of meshnode: the host (QUIC first, TCP
// fallback), the Kademlia DHT under meshnode's own protocol prefix, signed
// gossip adverts and the peer table, the /iicp/task/1.0.0 stream protocol
// (server and client), peer selection, retry and circuit breaking.
//
// mesh may import wire and libp2p. It reaches the task engine only through
// the small interface it declares; it must not import node, dirbridge or cmd.
package mesh
