package mcp

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/meshnode/meshnode/wire"
)

// JSON-RPC 2.0 error codes (jsonrpc.org/specification §5.1) and the MCP
// codes this server answers with.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodeUnauthorized: the MCP API key is missing or wrong (HTTP 401).
	CodeUnauthorized = -32001
	// CodeHeaderMismatch: an MCP-Protocol-Version, Mcp-Method or Mcp-Name
	// header is missing or disagrees with the body (MCP 2026-07-28).
	CodeHeaderMismatch = -32020
	// CodeUnsupportedProtocolVersion: the revision is not one this server
	// declares; data lists the supported ones.
	CodeUnsupportedProtocolVersion = -32022
)

// Request is one decoded JSON-RPC 2.0 message sent to the server: a call
// (ID set), a notification (no ID) or a response to a server request
// (IsResponse; this server sends none, so they are acknowledged and
// dropped).
type Request struct {
	ID     json.RawMessage // nil for a notification; a JSON string or number otherwise
	Method string
	Params json.RawMessage // nil when absent; always a JSON object when set
	// IsResponse marks a client response (result or error, no method).
	IsResponse bool
}

// IsCall reports whether the message expects a response.
func (r *Request) IsCall() bool { return r.ID != nil }

// rpcError is a JSON-RPC error object. Data carries the IICP code when
// one applies ({"iicp_code": …}) or what the MCP error defines.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
	// status is the HTTP status the error is sent with.
	status int
	// reason is the binding's refusal reason (mcp-era-negotiation-v0),
	// reported in data.reason.
	reason string
}

func (e *rpcError) Error() string { return e.Message }

func newErr(status, code int, msg string) *rpcError {
	return &rpcError{Code: code, Message: msg, status: status}
}

// withReason adds the binding's reason to data.
func (e *rpcError) withReason(reason string) *rpcError {
	e.reason = reason
	return e
}

// withIICP carries an IICP error code in data.
func (e *rpcError) withIICP(c wire.Code) *rpcError {
	e.Data = map[string]any{"iicp_code": string(c)}
	return e
}

// maxIDLen bounds a request id: ids are echoed back, so a hostile client
// must not make the server hold or write large ones.
const maxIDLen = 256

// decodeRequest parses one JSON-RPC 2.0 message. Messages must be a single
// object (MCP 2025-06-18 and later carry no batches), with "jsonrpc":"2.0",
// an id that is a string or a number (MCP forbids null), a method that is a
// non-empty string and params, when present, an object. The error names
// the rule broken and never echoes the input; its ID is the request's when
// that much could be read.
func decodeRequest(body []byte) (*Request, json.RawMessage, *rpcError) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || !json.Valid(body) {
		return nil, nil, newErr(http.StatusBadRequest, CodeParseError, "the body is not valid JSON")
	}
	if body[0] == '[' {
		return nil, nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "batches are not supported: send one JSON-RPC object per request")
	}
	if body[0] != '{' {
		return nil, nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "a JSON-RPC request must be an object")
	}
	var raw struct {
		JSONRPC json.RawMessage `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  json.RawMessage `json:"method"`
		Params  json.RawMessage `json:"params"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "the request object has an invalid member")
	}
	id, idErr := checkID(raw.ID)
	fail := func(msg string) (*Request, json.RawMessage, *rpcError) {
		return nil, id, newErr(http.StatusBadRequest, CodeInvalidRequest, msg)
	}
	if string(raw.JSONRPC) != `"2.0"` {
		return fail(`"jsonrpc" must be "2.0"`)
	}
	if idErr != "" {
		return nil, nil, newErr(http.StatusBadRequest, CodeInvalidRequest, idErr)
	}
	if raw.Method == nil && (raw.Result != nil || raw.Error != nil) {
		if id == nil {
			return fail("a response needs an id")
		}
		return &Request{ID: id, IsResponse: true}, id, nil
	}
	var method string
	if err := json.Unmarshal(raw.Method, &method); err != nil || method == "" {
		return fail(`"method" must be a non-empty string`)
	}
	req := &Request{ID: id, Method: method}
	if p := bytes.TrimSpace(raw.Params); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		if p[0] != '{' {
			return fail(`"params" must be an object`)
		}
		req.Params = p
	}
	return req, id, nil
}

// checkID returns the id when it is a string or a number, nil when absent,
// or the reason it is refused.
func checkID(id json.RawMessage) (json.RawMessage, string) {
	id = bytes.TrimSpace(id)
	switch {
	case len(id) == 0:
		return nil, ""
	case len(id) > maxIDLen:
		return nil, "the id is too long"
	case id[0] == '"':
		return id, ""
	case id[0] == '-' || (id[0] >= '0' && id[0] <= '9'):
		return id, ""
	}
	return nil, `"id" must be a string or a number`
}

// response is a JSON-RPC response.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

var nullID = json.RawMessage("null")

// writeResult sends a successful response.
func writeResult(w http.ResponseWriter, id json.RawMessage, result any) {
	writeJSON(w, http.StatusOK, response{JSONRPC: "2.0", ID: id, Result: result})
}

// writeError sends e; id is null when the request's could not be read.
func writeError(w http.ResponseWriter, id json.RawMessage, e *rpcError) {
	if id == nil {
		id = nullID
	}
	if e.reason != "" {
		d, _ := e.Data.(map[string]any)
		if d == nil {
			d = map[string]any{}
		}
		d["reason"] = e.reason
		e.Data = d
	}
	status := e.status
	if status == 0 {
		status = http.StatusOK
	}
	writeJSON(w, status, response{JSONRPC: "2.0", ID: id, Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"could not encode the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
