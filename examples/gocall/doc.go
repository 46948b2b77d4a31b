// Command gocall is the documented example of calling the IICP mesh from a
// Go program that runs no node: route.ForAgent, one chat task, the answer
// printed (or streamed with -stream).
//
//	go run ./examples/gocall -directory https://dir.example "What is IICP?"
//	MESHNODE_NODE_TOKEN="$(meshnode token)" go run ./examples/gocall -directory http://127.0.0.1:8010 "hi"
//	MESHNODE_NODE_TOKEN="$(meshnode token)" go run ./examples/gocall -stream \
//	    -bootstrap /ip4/127.0.0.1/udp/9501/quic-v1/p2p/12D3KooW… "hi"
//
// With -directory, routes come from the directory's dispatch tickets
// (verified against its signing key); the task goes straight to the chosen
// node with POST /v1/task, its payload sealed to the node's IICP-CX key.
// Nodes authorize callers they do not operate with a consumer token the
// directory issues against a registered node's token: set
// MESHNODE_NODE_TOKEN (an environment variable, never a flag: other users
// can read a process's arguments) to one (`meshnode token` prints a running
// node's). Without it only nodes that take tasks without credentials
// answer.
//
// With -bootstrap (a meshnode node's libp2p multiaddr: the `mesh` line
// `meshnode up` prints), the program opens a libp2p host of its own and sends the
// task to that node, which routes it — itself, its mesh peers, its
// directories — with its own credentials. The node does that only for its
// operator's programs: MESHNODE_NODE_TOKEN must be that node's token.
//
// Any refusal (unauthorized, no node, timeout) is a Go error, printed with
// the IICP code, exit status 1. The example imports route and wire only.
package main
