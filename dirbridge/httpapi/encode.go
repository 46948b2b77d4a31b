package httpapi

import (
	"strconv"
	"sync"

	"github.com/meshnode/meshnode/internal/jsonscan"
	"github.com/meshnode/meshnode/wire"
)

// encodeResponse renders a RESPONSE as JSON: the bytes wire.EncodeJSON
// (json.Marshal) writes, without its reflection walk. A successful RESPONSE
// is appended field by field in wire.Response's declared order; anything
// else (an error RESPONSE, a result whose strings need HTML escaping, a
// result that is not valid JSON) goes through wire.EncodeJSON, which also
// reports the invalid result as an error.
func encodeResponse(r *wire.Response) ([]byte, error) {
	if b, ok := appendResponse(nil, r); ok {
		return b, nil
	}
	return wire.EncodeJSON(r)
}

// responseFields are wire.Response's JSON names in declared order;
// TestEncodeResponseKnowsEveryField fails when wire.Response changes, so a
// new field cannot be silently dropped here.
var responseFields = []string{"task_id", "status", "result", "metrics", "model_used", "generated_by_ai",
	"node_id", "error", "code", "session_id", "call_id", "lifecycle"}

// appendResponse appends r as json.Marshal would; ok=false when r needs
// the general encoder.
func appendResponse(b []byte, r *wire.Response) ([]byte, bool) {
	// Lifecycle events (stream.go) are rare next to buffered answers: the
	// general encoder writes them.
	if r.Error != nil || r.Lifecycle != nil || len(r.Result) == 0 {
		return nil, false
	}
	if n := 224 + len(r.Result) + len(r.TaskID) + len(r.NodeID) + len(r.ModelUsed) + len(r.SessionID) + len(r.CallID); cap(b)-len(b) < n {
		b = append(make([]byte, 0, len(b)+n), b...)
	}
	b = jsonscan.AppendString(append(b, `{"task_id":`...), r.TaskID)
	b = jsonscan.AppendString(append(b, `,"status":`...), r.Status)
	// Validated and compacted as json.Marshal does for a json.RawMessage;
	// a result that needs HTML escaping goes to the general encoder.
	b, ok := jsonscan.AppendCompact(append(b, `,"result":`...), r.Result)
	if !ok {
		return nil, false
	}
	b = strconv.AppendInt(append(b, `,"metrics":{"latency_ms":`...), r.Metrics.LatencyMs, 10)
	b = strconv.AppendInt(append(b, `,"tokens_used":`...), r.Metrics.TokensUsed, 10)
	b = append(b, '}')
	if r.ModelUsed != "" {
		b = jsonscan.AppendString(append(b, `,"model_used":`...), r.ModelUsed)
	}
	if r.GeneratedByAI != nil {
		b = strconv.AppendBool(append(b, `,"generated_by_ai":`...), *r.GeneratedByAI)
	}
	if r.NodeID != "" {
		b = jsonscan.AppendString(append(b, `,"node_id":`...), r.NodeID)
	}
	b = append(b, `,"error":null`...)
	if r.Code != "" {
		b = jsonscan.AppendString(append(b, `,"code":`...), string(r.Code))
	}
	if r.SessionID != "" {
		b = jsonscan.AppendString(append(b, `,"session_id":`...), r.SessionID)
	}
	if r.CallID != "" {
		b = jsonscan.AppendString(append(b, `,"call_id":`...), r.CallID)
	}
	return append(b, '}'), true
}

// responseBufs recycles RESPONSE encoding buffers (writeResponse); one
// grown past maxPooledResponse is dropped, so a huge answer pins no memory.
var responseBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledResponse = 64 << 10
