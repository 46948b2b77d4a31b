package wire

// decodeResponseFast decodes a JSON RESPONSE that scanJSON accepted without
// encoding/json's reflection, the way decodeCallFast does for CALLs: a
// caller decodes one RESPONSE per task (issue 11 item 9). It handles the
// common successful shape only: member names exactly as declared, strings
// without escapes, integer metrics, error and lifecycle null or absent.
// Anything else returns ok=false and the caller decodes with encoding/json,
// so every unusual input keeps that decoder's exact result and error.
// FuzzDecodeResponseFast proves both paths produce equal Responses.
func decodeResponseFast(b []byte, resp *Response) bool {
	r := fastReader{b: b}
	var seen uint32
	return r.object(func(name []byte) bool {
		bit, ok := memberBit(name, &seen, responseNames...)
		if !ok {
			return false
		}
		return r.responseMember(bit, resp)
	})
}

// responseNames are Response's JSON member names; rf* are their bits.
var responseNames = []string{"task_id", "status", "result", "metrics", "model_used", "generated_by_ai",
	"node_id", "error", "code", "session_id", "call_id", "lifecycle"}

const (
	rfTaskID = 1 << iota
	rfStatus
	rfResult
	rfMetrics
	rfModelUsed
	rfGeneratedByAI
	rfNodeID
	rfError
	rfCode
	rfSessionID
	rfCallID
	rfLifecycle
)

// responseMember decodes the member bit of a RESPONSE at r.i.
func (r *fastReader) responseMember(bit uint32, resp *Response) bool {
	var ok bool
	switch bit {
	case rfTaskID:
		resp.TaskID, ok = r.str()
	case rfStatus:
		resp.Status, ok = r.str()
	case rfResult:
		resp.Result, ok = r.raw()
	case rfMetrics:
		ok = r.metrics(&resp.Metrics)
	case rfModelUsed:
		resp.ModelUsed, ok = r.str()
	case rfGeneratedByAI:
		resp.GeneratedByAI, ok = r.optBool()
	case rfNodeID:
		resp.NodeID, ok = r.str()
	case rfError, rfLifecycle:
		// An error or a lifecycle envelope takes encoding/json's path.
		ok = r.i < len(r.b) && r.b[r.i] == 'n' && r.word("null")
	case rfCode:
		var s string
		s, ok = r.str()
		resp.Code = Code(s)
	case rfSessionID:
		resp.SessionID, ok = r.str()
	case rfCallID:
		resp.CallID, ok = r.str()
	default: // a member no field takes
		ok = r.skip()
	}
	return ok
}

// metrics decodes the metrics object (null leaves it zero).
func (r *fastReader) metrics(m *Metrics) bool {
	if r.i < len(r.b) && r.b[r.i] == 'n' {
		return r.word("null")
	}
	var seen uint32
	return r.object(func(name []byte) bool {
		bit, ok := memberBit(name, &seen, "latency_ms", "tokens_used")
		switch {
		case !ok:
			return false
		case bit == 1:
			m.LatencyMs, ok = r.int64()
		case bit == 2:
			m.TokensUsed, ok = r.int64()
		default:
			ok = r.skip()
		}
		return ok
	})
}

// optBool decodes true, false or null (nil) into a *bool.
func (r *fastReader) optBool() (*bool, bool) {
	if r.i >= len(r.b) {
		return nil, false
	}
	switch r.b[r.i] {
	case 'n':
		return nil, r.word("null")
	case 't':
		v := true
		return &v, r.word("true")
	case 'f':
		v := false
		return &v, r.word("false")
	}
	return nil, false
}
