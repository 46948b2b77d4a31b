// Package interop keeps meshnode compatible with the deployed public IICP
// SDKs (RobLe3/iicp-client-python, -rust, -typescript) and documents where
// they deviate from the spec (docs/interop.md).
//
// It holds two things:
//
//   - Client-side tolerance that the HTTP caller (dirbridge/dirclient) and the
//     CLI adopt: DecodeTaskAnswer reads whatever a deployed SDK node answers
//     to POST /v1/task ("completed" for success, IICP-E021 for a full node,
//     flat {"code","message"} or HTML error bodies, top-level usage) as one
//     *wire.Response; TicketIssuer and RegistryPrefix compute what the SDKs
//     compute for dispatch-ticket issuers and registry presence look-ups;
//     CompatConstraints adds the qos_class mirror deployed nodes read.
//   - Tests that replay, byte shape for byte shape, what each SDK sends to a
//     real meshnode directory (register, heartbeat, discover, dispatch
//     ticket, directory key, consumer token, registry presence) and to a real
//     node HTTP bridge (plain and IICP-CX tasks), and check the answers the
//     way the SDKs parse them.
//
// interop imports wire only (tests import the servers). It never logs: the
// bodies it decodes may carry payloads and never reach an error message.
package interop
