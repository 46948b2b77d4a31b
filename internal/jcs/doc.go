// Package jcs implements canonical JSON (RFC 8785, JCS). A federation
// event's signature input hashes canonical_json(payload)
// (iicp-federated-directory.md §5.1), so a seed and replicas in any language
// must produce identical bytes. The canonicaliser works on the token stream,
// which lets it reject what JCS cannot represent unambiguously: duplicate
// member names, invalid UTF-8, numbers outside IEEE 754, trailing data, and
// nesting deeper than 64.
//
// jcs is pure (no I/O, clock or logging) and imports only the standard
// library and no module package. It is its own package so that its fuzz
// target runs in a small test binary (in dirbridge/directory/federation, which links
// SQLite and libp2p, coverage bookkeeping made it many times slower).
package jcs
