package interop

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/meshnode/meshnode/wire"
)

// StatusCompleted is the success status deployed SDK nodes send
// (iicp-client-python src/iicp_client/node.py `_task`: "status": "completed");
// the spec's RESPONSE says "success" (iicp-core.md §3.2).
const StatusCompleted = "completed"

// maxAnswer bounds what DecodeTaskAnswer parses (the HTTP caller's own cap).
const maxAnswer = 8 << 20

// ErrNoAnswer reports a body that is neither a RESPONSE nor an error of any
// known dialect on a 2xx status: the node gave no usable answer.
var ErrNoAnswer = errors.New("interop: node answered without an IICP body")

// answer is the union of the RESPONSE shapes deployed nodes send. Error is
// raw because Python nodes' relay paths and older builds send a string.
type answer struct {
	TaskID    *string         `json:"task_id"`
	Status    *string         `json:"status"`
	Result    json.RawMessage `json:"result"`
	Metrics   *wire.Metrics   `json:"metrics"`
	ModelUsed string          `json:"model_used"`
	GenByAI   *bool           `json:"generated_by_ai"`
	NodeID    string          `json:"node_id"`
	Error     json.RawMessage `json:"error"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Usage     *struct {
		TotalTokens int64 `json:"total_tokens"`
	} `json:"usage"`
}

// DecodeTaskAnswer turns a node's answer to POST /v1/task (HTTP status and
// body) into a RESPONSE, whatever dialect the node speaks:
//
//   - the spec RESPONSE (success / error / timeout);
//   - "status":"completed" (Python/Rust SDK nodes) → success, with
//     metrics.tokens_used taken from a top-level OpenAI "usage" when the node
//     sent no metrics;
//   - the error envelope {"error":{"code","message",…}}, a flat
//     {"code","message"}, or {"error":"text"};
//   - a non-JSON body (Python's BaseHTTPRequestHandler.send_error HTML) on
//     an error status, mapped from the status alone.
//
// Deployed nodes signal a full node with IICP-E021 at 429; that becomes
// capacity_exceeded (qos_class and retry_after_ms kept), so callers retry
// elsewhere as for a spec node. An IICP-CX sealed answer (iicp_conf_resp)
// must be opened before this is called. The returned error never contains
// body content.
func DecodeTaskAnswer(httpStatus int, body []byte, taskID string) (*wire.Response, error) {
	if len(body) > maxAnswer {
		return nil, errors.New("interop: task answer too large")
	}
	var a answer
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &a) != nil {
		if httpStatus >= 400 {
			return statusOnly(httpStatus, taskID), nil
		}
		return nil, ErrNoAnswer
	}
	r := &wire.Response{TaskID: taskID, Result: a.Result, ModelUsed: a.ModelUsed, GeneratedByAI: a.GenByAI, NodeID: a.NodeID}
	if a.TaskID != nil && *a.TaskID != "" {
		r.TaskID = *a.TaskID
	}
	if a.Metrics != nil {
		r.Metrics = *a.Metrics
	} else if a.Usage != nil {
		r.Metrics.TokensUsed = a.Usage.TotalTokens
	}
	werr := answerError(&a, httpStatus)
	status := ""
	if a.Status != nil {
		status = *a.Status
	}
	switch {
	case werr == nil && httpStatus < 400 && (status == wire.StatusSuccess || status == StatusCompleted):
		r.Status = wire.StatusSuccess
		return r, nil
	case werr == nil && httpStatus < 400:
		if status == "" && len(a.Result) == 0 {
			return nil, ErrNoAnswer
		}
		// A 2xx answer that is neither success nor carries an error code.
		werr = wire.NewError(wire.CodeBackendError, "node reported status without an error code")
	case werr == nil:
		werr = statusError(httpStatus)
	}
	r.Result, r.Error, r.Code = nil, werr, werr.Code
	r.Status = wire.StatusError
	if werr.Code == wire.CodeTaskTimeout || status == wire.StatusTimeout {
		r.Status = wire.StatusTimeout
	}
	return r, nil
}

// answerError extracts the error of any dialect, or nil.
func answerError(a *answer, httpStatus int) *wire.Error {
	var e *wire.Error
	raw := bytes.TrimSpace(a.Error)
	switch {
	case len(raw) > 0 && raw[0] == '{':
		var obj wire.Error
		if json.Unmarshal(raw, &obj) == nil && obj.Code != "" {
			e = &obj
		}
	case len(raw) > 0 && raw[0] == '"':
		// {"error":"text"}: the text is node-chosen; keep only the status.
		e = statusError(httpStatus)
	}
	if e == nil && a.Code != "" && (httpStatus >= 400 || a.Status == nil) {
		e = &wire.Error{Code: wire.Code(a.Code), Message: a.Message}
	}
	if e == nil {
		return nil
	}
	if e.Code == wire.CodeE021 && httpStatus == http.StatusTooManyRequests {
		// Python SDK nodes: {"code":"IICP-E021","message":"capacity_exceeded"} at 429.
		e.Code = wire.CodeCapacityExceeded
	}
	if e.QoSClass != "" {
		// Python nodes spell best-effort with an underscore.
		e.QoSClass = strings.ReplaceAll(e.QoSClass, "_", "-")
	}
	if httpStatus >= 400 && e.Status() != httpStatus {
		e.HTTP = httpStatus
	}
	return e
}

// statusOnly is the RESPONSE for an error status without an IICP body.
func statusOnly(httpStatus int, taskID string) *wire.Response {
	e := statusError(httpStatus)
	st := wire.StatusError
	if e.Code == wire.CodeTaskTimeout {
		st = wire.StatusTimeout
	}
	return &wire.Response{TaskID: taskID, Status: st, Error: e, Code: e.Code}
}

// statusCodes maps an error HTTP status to the closest catalogue code;
// any status not listed is internal.
var statusCodes = map[int]wire.Code{
	http.StatusBadRequest:            wire.CodeValidationError,
	http.StatusUnprocessableEntity:   wire.CodeValidationError,
	http.StatusUnauthorized:          wire.CodeUnauthorized,
	http.StatusForbidden:             wire.CodeForbidden,
	http.StatusNotFound:              wire.CodeNotFound,
	http.StatusConflict:              wire.CodeConflict,
	http.StatusRequestEntityTooLarge: wire.CodePayloadTooLarge,
	http.StatusTooManyRequests:       wire.CodeCapacityExceeded,
	http.StatusServiceUnavailable:    wire.CodeUnavailable,
	http.StatusGatewayTimeout:        wire.CodeTaskTimeout,
	http.StatusBadGateway:            wire.CodeBackendError,
}

// statusError maps an HTTP status to the closest catalogue code; the
// message is fixed so no body text is ever repeated.
func statusError(httpStatus int) *wire.Error {
	c, ok := statusCodes[httpStatus]
	if !ok {
		c = wire.CodeInternal
	}
	e := wire.NewError(c, "node answered HTTP "+http.StatusText(httpStatus)+" without an IICP error body")
	if e.Status() != httpStatus {
		e.HTTP = httpStatus
	}
	return e
}
