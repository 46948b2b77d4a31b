package openai

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

// apiError is OpenAI's error object; Code carries the IICP code.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Param   *string `json:"param"`
}

// statusFor maps an IICP error onto the status OpenAI clients expect:
// their retry logic keys on 429 and 5xx, their error classes on 400, 401,
// 403 and 404.
func statusFor(e *wire.Error) int {
	switch e.Code {
	case wire.CodeValidationError, wire.CodeUnsupportedProfile:
		return http.StatusBadRequest
	case wire.CodeE033, wire.CodeE029, wire.CodeUnknownIntent:
		return http.StatusNotFound
	case wire.CodeCapacityExceeded, wire.CodeRateLimited:
		return http.StatusTooManyRequests
	case wire.CodeNoAvailableNode:
		return http.StatusServiceUnavailable
	case wire.CodeTaskTimeout:
		return http.StatusGatewayTimeout
	}
	return e.Status()
}

func typeFor(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func toAPIError(e *wire.Error) apiError {
	a := apiError{Message: e.Message, Type: typeFor(statusFor(e)), Code: string(e.Code)}
	if e.Field != "" {
		f := e.Field
		a.Param = &f
	}
	return a
}

// writeError answers with OpenAI's error body (429 carries Retry-After).
func writeError(w http.ResponseWriter, e *wire.Error) {
	status := statusFor(e)
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(e), 10))
	}
	writeJSON(w, status, map[string]apiError{"error": toAPIError(e)})
}

// retryAfterSeconds rounds the node's retry_after_ms up to whole seconds
// (Retry-After has no finer unit); at least 1.
func retryAfterSeconds(e *wire.Error) int64 {
	s := int64(math.Ceil(float64(e.RetryAfterMs) / 1000))
	if e.RetryAfter > s {
		s = e.RetryAfter
	}
	return max(s, 1)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"response could not be encoded","type":"server_error","code":"internal_error","param":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// callError turns a router outcome into the error the client sees. When
// every node that answered was saturated (capacity_exceeded or
// rate_limited) the call is a 429 with the largest retry hint any node
// gave, not a 503.
func callError(res *route.Result, err error) *wire.Error {
	var werr *wire.Error
	switch {
	case errors.As(err, &werr) && werr.Code == wire.CodeNoAvailableNode && saturated(res):
		ce := wire.NewError(wire.CodeCapacityExceeded, "every node that serves this model is busy; retry later")
		if res.Response != nil && res.Response.Error != nil {
			ce.RetryAfterMs = res.Response.Error.RetryAfterMs
			ce.QoSClass = res.Response.Error.QoSClass
		}
		return ce
	case werr != nil:
		return werr
	case errors.Is(err, route.ErrStreamBroken):
		return wire.NewError(wire.CodeBackendError, "the serving node's answer stream broke; the output is incomplete")
	}
	return wire.NewError(wire.CodeUnavailable, "no node could take the request")
}

// saturated reports whether every attempt that reached a node was turned
// away for load.
func saturated(res *route.Result) bool {
	if res == nil || res.Attempts == 0 {
		return false
	}
	for _, a := range res.Tried {
		if a.NotSent {
			continue
		}
		if a.Code != wire.CodeCapacityExceeded && a.Code != wire.CodeRateLimited {
			return false
		}
	}
	return true
}

// objectFor is each endpoint's buffered object and id prefix.
func objectFor(k kind) (object, idPrefix string) {
	switch k {
	case kindCompletion:
		return "text_completion", "cmpl-"
	case kindEmbedding:
		return "list", ""
	}
	return "chat.completion", "chatcmpl-"
}

// completeBody turns a buffered IICP result (already OpenAI-shaped, per
// the registry output schemas) into the OpenAI response: id, object,
// created and model filled where the backend left them out.
func completeBody(k kind, taskID string, created int64, resp *wire.Response) ([]byte, *wire.Error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(resp.Result, &obj); err != nil || obj == nil {
		return nil, wire.NewError(wire.CodeBackendError, "the serving node's result is not an object")
	}
	object, prefix := objectFor(k)
	setDefault(obj, "object", object)
	setDefault(obj, "model", resp.ModelUsed)
	if k != kindEmbedding {
		setDefault(obj, "id", prefix+taskID)
		if _, ok := obj["created"]; !ok {
			obj["created"] = jsonInt(created)
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, wire.NewError(wire.CodeInternal, "response could not be encoded")
	}
	return b, nil
}

// setDefault sets a string member when it is missing, null or "".
func setDefault(obj map[string]json.RawMessage, key, v string) {
	if raw, ok := obj[key]; ok && !isNull(raw) && string(raw) != `""` {
		return
	}
	if v == "" {
		return
	}
	b, _ := json.Marshal(v)
	obj[key] = b
}
