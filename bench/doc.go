// Command bench measures meshnode in one process and reports ratios
// against baselines measured in the same rounds: the node's task path
// against calling its backend directly (issue 3), the libp2p QUIC task
// stream against the HTTP bridge and the backend (issue 6), directory
// discover and heartbeat with 10,000 nodes (issue 4), and the wire codecs.
//
//	go run ./bench                                  # default run, about 1.5 minutes on 2 cores
//	go run ./bench -duration 10s -concurrency 1,16,64,128
//	go run ./bench -only task,wire -json
//
// Everything runs on loopback against an OpenAI-compatible test backend
// the program starts itself (zero delay unless -backend-delay). It exits 1
// when a request failed, an answer went to the wrong caller, or a count
// does not add up; numbers themselves are reported, never judged.
//
// Like a composition root it builds real parts of every package (engine,
// backend client, HTTP bridge, mesh hosts, directory) from their public
// APIs; nothing in the product may import it.
package main
