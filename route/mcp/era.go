package mcp

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// The MCP revisions this server declares (iicp-mcp-binding.md §4: one per
// era). Nothing else is accepted and neither is read as the other.
const (
	RevisionLegacy = "2025-11-25" // initialize / initialized; served statelessly
	RevisionModern = "2026-07-28" // stateless, self-contained requests (§4.2)
)

// Revisions lists the declared revisions, newest first.
func Revisions() []string { return []string{RevisionModern, RevisionLegacy} }

// HTTP headers of the Streamable HTTP binding.
const (
	HeaderProtocolVersion = "MCP-Protocol-Version"
	HeaderMethod          = "Mcp-Method"
	HeaderName            = "Mcp-Name"
)

// Reserved _meta keys (MCP 2026-07-28).
const (
	metaPrefix             = "io.modelcontextprotocol/"
	metaProtocolVersion    = metaPrefix + "protocolVersion"
	metaClientInfo         = metaPrefix + "clientInfo"
	metaClientCapabilities = metaPrefix + "clientCapabilities"
	metaServerInfo         = metaPrefix + "serverInfo"
	metaLogLevel           = metaPrefix + "logLevel"
)

// Refusal reasons, spelled as fixtures/profiles/mcp-era-negotiation-v0.json
// spells them; sent in error.data.reason.
const (
	reasonMissingVersion     = "missing_protocol_version"
	reasonHeaderMismatch     = "header_body_mismatch"
	reasonUnsupportedVersion = "unsupported_protocol_version"
	reasonMalformedMeta      = "malformed_reserved_metadata"
	reasonUnsupportedExt     = "unsupported_extension"
	reasonPassthrough        = "credential_passthrough_prohibited"
)

// revision is the era a request was judged under.
type revision struct {
	version string
	modern  bool
}

// negotiate decides the revision of one request (§4.2, §4.3):
//
//   - initialize is the legacy handshake; the answer names the declared
//     legacy revision unless the client asked for exactly that;
//   - a request naming the modern revision (header or _meta) must carry
//     MCP-Protocol-Version, the same revision in _meta (calls), Mcp-Method
//     equal to the method and, for tools/call, Mcp-Name equal to the tool;
//   - any other request is legacy: a header, when present, must name a
//     declared revision (an absent one is the MCP default for clients that
//     predate the header);
//   - reserved _meta members must be well formed, and no member may carry
//     an IICP credential (§4.2: they are never copied into _meta).
func negotiate(h http.Header, req *Request) (revision, *rpcError) {
	meta, e := readMeta(req.Params)
	if e != nil {
		return revision{}, e
	}
	hv := h.Get(HeaderProtocolVersion)
	metaVer, _ := meta[metaProtocolVersion].(string)
	if req.Method == "initialize" {
		var p struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		if err := json.Unmarshal(orEmpty(req.Params), &p); err != nil || p.ProtocolVersion == "" {
			return revision{}, newErr(http.StatusOK, CodeInvalidParams, "initialize needs params.protocolVersion").withReason(reasonMissingVersion)
		}
		return revision{version: RevisionLegacy}, nil
	}
	if hv == RevisionModern || metaVer != "" || req.Method == "server/discover" {
		return modern(h, req, hv, metaVer)
	}
	if hv != "" && hv != RevisionLegacy {
		return revision{}, unsupported(hv)
	}
	return revision{version: RevisionLegacy}, nil
}

// modern checks the self-contained metadata of a 2026-07-28 request.
func modern(h http.Header, req *Request, hv, metaVer string) (revision, *rpcError) {
	mismatch := func(msg string) (revision, *rpcError) {
		return revision{}, newErr(http.StatusBadRequest, CodeHeaderMismatch, msg).withReason(reasonHeaderMismatch)
	}
	switch {
	case hv == "" && metaVer == "" && req.Method == "server/discover":
		// A discover probe without a revision: answered, it lists ours.
		return revision{version: RevisionModern, modern: true}, nil
	case hv == "":
		return revision{}, newErr(http.StatusBadRequest, CodeHeaderMismatch,
			HeaderProtocolVersion+" is required on a "+RevisionModern+" request").withReason(reasonMissingVersion)
	case !slices.Contains(Revisions(), hv):
		return revision{}, unsupported(hv)
	case req.IsCall() && metaVer == "" && req.Method != "ping":
		// ping carries no application state: the header names its revision
		// (the official SDK sends it without _meta).
		return revision{}, newErr(http.StatusBadRequest, CodeInvalidParams,
			"_meta must name the protocol revision ("+metaProtocolVersion+")").withReason(reasonMissingVersion)
	case metaVer != "" && metaVer != hv:
		return mismatch(HeaderProtocolVersion + " does not match _meta")
	case hv != RevisionModern:
		// A legacy revision in the header of a request built the modern way.
		return mismatch(HeaderProtocolVersion + " names a legacy revision on a stateless request")
	case h.Get(HeaderMethod) == "":
		return revision{}, newErr(http.StatusBadRequest, CodeHeaderMismatch, HeaderMethod+" is required").withReason(reasonHeaderMismatch)
	case h.Get(HeaderMethod) != req.Method:
		return mismatch(HeaderMethod + " does not match the body's method")
	}
	if req.Method == "tools/call" {
		var p struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(orEmpty(req.Params), &p)
		if name := h.Get(HeaderName); name == "" || name != p.Name {
			return mismatch(HeaderName + " must equal the tool's name")
		}
	}
	return revision{version: RevisionModern, modern: true}, nil
}

func unsupported(requested string) *rpcError {
	e := newErr(http.StatusBadRequest, CodeUnsupportedProtocolVersion, "unsupported MCP protocol revision")
	e.Data = map[string]any{"supported": Revisions(), "requested": clip(requested, 32)}
	return e.withReason(reasonUnsupportedVersion)
}

// credentialWords mark _meta members that would carry an IICP credential.
var credentialWords = []string{"node_token", "consumer_token", "consumer-token", "ticket", "iicp_token", "authorization"}

// readMeta returns params._meta (nil when absent) after checking it: an
// object, reserved members of the right type, no credential-like member.
func readMeta(params json.RawMessage) (map[string]any, *rpcError) {
	var p struct {
		Meta json.RawMessage `json:"_meta"`
	}
	if len(params) == 0 || json.Unmarshal(params, &p) != nil || len(p.Meta) == 0 || string(p.Meta) == "null" {
		return nil, nil
	}
	bad := func(msg string) (map[string]any, *rpcError) {
		return nil, newErr(http.StatusBadRequest, CodeInvalidParams, msg).withReason(reasonMalformedMeta)
	}
	var meta map[string]any
	if err := json.Unmarshal(p.Meta, &meta); err != nil {
		return bad("_meta must be an object")
	}
	for k, v := range meta {
		lk := strings.ToLower(k)
		for _, w := range credentialWords {
			if strings.Contains(lk, w) {
				return nil, newErr(http.StatusBadRequest, CodeInvalidParams,
					"_meta must not carry IICP or caller credentials").withReason(reasonPassthrough)
			}
		}
		if !strings.HasPrefix(k, metaPrefix) {
			continue
		}
		switch k {
		case metaProtocolVersion, metaLogLevel:
			if s, ok := v.(string); !ok || s == "" {
				return bad(k + " must be a non-empty string")
			}
		case metaClientInfo:
			ci, ok := v.(map[string]any)
			if !ok {
				return bad(k + " must be an object")
			}
			if n, ok := ci["name"].(string); !ok || n == "" {
				return bad(k + ".name must be a non-empty string")
			}
		case metaClientCapabilities:
			if _, ok := v.(map[string]any); !ok {
				return bad(k + " must be an object")
			}
		}
	}
	return meta, nil
}

func orEmpty(p json.RawMessage) json.RawMessage {
	if len(p) == 0 {
		return json.RawMessage("{}")
	}
	return p
}

// clip bounds text echoed from a client.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
