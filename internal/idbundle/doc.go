// Package idbundle moves a node's identity to another machine: Export
// packs everything that makes a node home this node — the node key, the
// node-key binding (after a rotation or recovery), the IICP-CX key ring,
// the directory credentials (node tokens, registration and metrics-batch
// state per directory), the mesh membership credential, the local
// operator token and the operator delegation — into one file sealed with a
// passphrase (internal/passbox: scrypt + XChaCha20-Poly1305); Import
// verifies it and writes it into another home.
//
// File format (version 1), JSON:
//
//	{"kind":"meshnode-identity-bundle","version":1,"node_id":"<uuid>",
//	 "created_at":"<RFC 3339>","encrypted":{<passbox.Box>}}
//
// The box's additional data is the kind, version and node_id, so the
// header cannot be edited; its plaintext is JSON
// {"node_id":…,"files":{"<name in the state dir>":"<base64>"}} with names
// from a fixed list (Files). Import decrypts (authenticated: a wrong
// passphrase or any altered byte is refused), checks that the node key
// parses and goes by the recorded node_id (itself, or through its
// binding), that the delegation, if any, verifies for that node_id, and
// refuses to replace an existing identity without force or to write while
// a node holds the home's lock (node.lock). Machine-local state (admin
// token, runtime file, config, caches) is not carried.
//
// idbundle may import wire, internal/identity, internal/passbox and
// internal/paths; it performs file I/O only (no network, no logging).
package idbundle
