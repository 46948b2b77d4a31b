// Package operator keeps an operator's Ed25519 key and the node side of
// operator identity (iicp-dir.md §3.1 operator_delegation, ADR-045 Phase
// A): `meshnode operator init` creates the key, `meshnode operator
// delegate` signs a node's delegation into the node's home, and the node
// sends that delegation in every REGISTER.
//
// The operator key is kept apart from node keys: its own file (default
// $XDG_CONFIG_HOME/meshnode-operator/operator.key, never under a node's
// --home), mode 0600 (refused when others can read it), optionally sealed
// with a passphrase (scrypt N=2^15 r=8 p=1, XChaCha20-Poly1305). A node
// home holds only the signed delegation (operator-delegation.json), never
// the operator key. The delegation format and its verification are wire's
// (wire.OperatorDelegation), the one format every verifier (directory,
// mesh, LAN) uses.
//
// operator may import wire and internal/paths; it performs file I/O only
// (no network, no logging).
package operator
