package openai

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/meshnode/meshnode/wire"
)

// Endpoint kinds.
type kind int

const (
	kindChat kind = iota
	kindCompletion
	kindEmbedding
)

// intents maps each endpoint to its IICP intent.
var intents = map[kind]string{
	kindChat:       wire.IntentChat,
	kindCompletion: wire.IntentCompletion,
	kindEmbedding:  wire.IntentEmbedding,
}

// maxRequestBytes caps a request body: a long chat history is a few MB.
const maxRequestBytes = 8 << 20

// request is an OpenAI request reduced to what the CALL needs.
type request struct {
	kind         kind
	model        string
	stream       bool
	includeUsage bool
	// payload is the CALL payload: the request object without the
	// transport-level members (model, stream, stream_options).
	payload json.RawMessage
	// maxTokens is max_tokens or max_completion_tokens (0: none).
	maxTokens int64
}

// parseRequest reads an OpenAI request body. Errors are validation_error
// naming the field, never quoting the input.
func parseRequest(k kind, body []byte) (*request, *wire.Error) {
	if len(body) > maxRequestBytes {
		return nil, wire.NewError(wire.CodePayloadTooLarge, "request body exceeds 8 MiB")
	}
	trimmed := bytes.TrimSpace(body)
	var obj map[string]json.RawMessage
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &obj) != nil {
		return nil, wire.NewError(wire.CodeValidationError, "request body must be a JSON object")
	}
	r := &request{kind: k}
	var werr *wire.Error
	if r.model, werr = stringField(obj, "model"); werr != nil {
		return nil, werr
	}
	if r.model == "auto" {
		r.model = ""
	}
	if r.stream, werr = boolField(obj, "stream"); werr != nil {
		return nil, werr
	}
	if k == kindEmbedding && r.stream {
		return nil, wire.NewError(wire.CodeValidationError, "embeddings cannot be streamed").WithField("stream")
	}
	if raw, ok := obj["stream_options"]; ok && !isNull(raw) {
		var so struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if json.Unmarshal(raw, &so) != nil {
			return nil, wire.NewError(wire.CodeValidationError, "stream_options must be an object").WithField("stream_options")
		}
		r.includeUsage = so.IncludeUsage
	}
	if werr := checkRequired(k, obj); werr != nil {
		return nil, werr
	}
	if werr := r.takeMaxTokens(obj); werr != nil {
		return nil, werr
	}
	if raw, ok := obj["n"]; ok && !isNull(raw) && string(bytes.TrimSpace(raw)) != "1" {
		return nil, wire.NewError(wire.CodeValidationError, "only n=1 is supported").WithField("n")
	}
	for _, f := range []string{"model", "stream", "stream_options", "n", "max_completion_tokens"} {
		delete(obj, f)
	}
	if r.maxTokens > 0 {
		obj["max_tokens"] = json.RawMessage(jsonInt(r.maxTokens))
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, wire.NewError(wire.CodeValidationError, "request body could not be re-encoded")
	}
	r.payload = b
	return r, nil
}

// checkRequired names the member each endpoint cannot do without.
func checkRequired(k kind, obj map[string]json.RawMessage) *wire.Error {
	field := map[kind]string{kindChat: "messages", kindCompletion: "prompt", kindEmbedding: "input"}[k]
	if raw, ok := obj[field]; !ok || isNull(raw) {
		return wire.NewError(wire.CodeValidationError, field+" is required").WithField(field)
	}
	return nil
}

// takeMaxTokens reads max_completion_tokens (newer SDKs) or max_tokens.
func (r *request) takeMaxTokens(obj map[string]json.RawMessage) *wire.Error {
	for _, f := range []string{"max_completion_tokens", "max_tokens"} {
		raw, ok := obj[f]
		if !ok || isNull(raw) {
			continue
		}
		var n int64
		if json.Unmarshal(raw, &n) != nil || n < 1 {
			return wire.NewError(wire.CodeValidationError, f+" must be a positive integer").WithField(f)
		}
		r.maxTokens = n
		return nil
	}
	return nil
}

func stringField(obj map[string]json.RawMessage, f string) (string, *wire.Error) {
	raw, ok := obj[f]
	if !ok || isNull(raw) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || len(s) > wire.MaxNameLen || strings.ContainsAny(s, "\r\n") {
		return "", wire.NewError(wire.CodeValidationError, f+" must be a short string").WithField(f)
	}
	return s, nil
}

func boolField(obj map[string]json.RawMessage, f string) (bool, *wire.Error) {
	raw, ok := obj[f]
	if !ok || isNull(raw) {
		return false, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		return false, wire.NewError(wire.CodeValidationError, f+" must be a boolean").WithField(f)
	}
	return b, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func jsonInt(n int64) []byte { b, _ := json.Marshal(n); return b }
