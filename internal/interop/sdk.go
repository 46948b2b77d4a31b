package interop

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/meshnode/meshnode/wire"
)

// TicketIssuer is the `iss` a deployed SDK requires in a dispatch route
// ticket it obtained from directoryURL: the configured base URL without
// trailing slashes and without one "/api" suffix (iicp-client-rust
// src/client.rs `ticketed_candidates`: base.strip_suffix("/api")). Scheme,
// host and port stay exactly as configured, so a directory must derive iss
// from the Host the caller addressed (or a PublicURL it was configured with).
func TicketIssuer(directoryURL string) string {
	base := strings.TrimRight(directoryURL, "/")
	return strings.TrimSuffix(base, "/api")
}

// RegistryPrefix is the path segment deployed provider SDKs use for their
// presence probe GET {directory}/v1/registry/nodes/{prefix}: the first 8
// characters of a UUID node_id, any other node_id whole
// (iicp-client-python src/iicp_client/recovery.py `node_registry_prefix`).
func RegistryPrefix(nodeID string) string {
	if wire.ValidUUID(nodeID) {
		return nodeID[:8]
	}
	return nodeID
}

// CompatCallJSON encodes call for POST /v1/task and mirrors
// constraints.qos as constraints.qos_class, the name deployed Python SDK
// nodes read for QoS admission (iicp-client-python src/iicp_client/node.py
// `_task`; their default "best_effort" never waits for a slot). Spec nodes
// ignore the extra member (iicp-cbor-wire.md §7.5 unknown keys). The value
// is the spec spelling; Python nodes treat unknown classes as best effort.
func CompatCallJSON(call *wire.Call) ([]byte, error) {
	body, err := json.Marshal(call)
	if err != nil {
		return nil, fmt.Errorf("interop: encoding call: %w", err)
	}
	if call.Constraints.QoS == "" {
		return body, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("interop: re-reading call: %w", err)
	}
	var cons map[string]json.RawMessage
	if err := json.Unmarshal(top["constraints"], &cons); err != nil {
		return nil, fmt.Errorf("interop: re-reading constraints: %w", err)
	}
	cons["qos_class"] = cons["qos"]
	if top["constraints"], err = json.Marshal(cons); err != nil {
		return nil, fmt.Errorf("interop: encoding constraints: %w", err)
	}
	return json.Marshal(top)
}
