package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/jsonscan"
)

// This file maps a CALL payload onto an OpenAI-compatible request body, per
// the intent registry input schemas (registry/schemas/llm-*-v1-input.json).
// Errors name the offending field path only, never a value: the payload is
// caller data and must not reach logs or error messages (SEC-LOG-01).

// Forwarded fields. A payload may carry any extra property (the registry
// schemas set additionalProperties: true) but only these reach the backend:
// `n`, `best_of` and friends would let one CALL multiply the operator's
// token bill past the advertised max_tokens.
var (
	chatForward = fieldSet("temperature", "top_p", "stop", "presence_penalty",
		"frequency_penalty", "seed", "response_format", "tools", "tool_choice",
		"parallel_tool_calls", "logit_bias", "logprobs", "top_logprobs", "user",
		"top_k", "min_p", "repeat_penalty")
	completionForward = fieldSet("temperature", "top_p", "stop", "presence_penalty",
		"frequency_penalty", "seed", "logit_bias", "logprobs", "suffix", "user",
		"top_k", "min_p", "repeat_penalty")
	embeddingForward = fieldSet("dimensions", "user")
)

// chatRoles is the role enum of llm-chat-v1-input.json.
var chatRoles = fieldSet("system", "user", "assistant", "tool")

// summariseFormats is the format enum of llm-summarize-v1-input.json.
var summariseFormats = fieldSet("bullets", "paragraph", "headline")

// payloadNames are the member names and enum values the payload mappers
// look up: parseObject and parseMessages reuse these strings instead of
// allocating one per key (internJSONString).
var payloadNames = func() map[string]string {
	m := map[string]string{}
	for _, set := range []map[string]bool{chatForward, completionForward, embeddingForward, chatRoles, summariseFormats} {
		for n := range set {
			m[n] = n
		}
	}
	for _, n := range []string{"messages", "role", "content", "max_tokens", "stream", "prompt", "input",
		"text", "format", "language", "max_length", "model", "stream_options"} {
		m[n] = n
	}
	return m
}()

// internJSONString is simpleJSONString returning the shared copy of a
// known name (no allocation); any other string decodes as before.
func internJSONString(raw []byte) (string, bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		if s, ok := payloadNames[string(raw[1:len(raw)-1])]; ok {
			return s, true
		}
	}
	return simpleJSONString(raw)
}

func fieldSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// The API paths, relative to the base URL.
const (
	pathChat        = "/chat/completions"
	pathCompletions = "/completions"
	pathEmbeddings  = "/embeddings"
)

// apiPaths lists them (OpenAI parses each once).
var apiPaths = []string{pathChat, pathCompletions, pathEmbeddings}

// streamOptions asks streamed answers for a usage chunk (shared, read-only).
var streamOptions = map[string]any{"include_usage": true}

// prepared is a validated request ready to send.
type prepared struct {
	mode   Mode
	path   string // relative to the base URL, e.g. "/chat/completions"
	body   requestBody
	stream bool
	// summary options, echoed into the summarise result.
	summaryFormat string
}

// badPayload builds an ErrBadPayload naming a field path, never a value.
func badPayload(field, problem string) error {
	if field == "" {
		return fmt.Errorf("%w: %s", ErrBadPayload, problem)
	}
	return fmt.Errorf("%w: %s: %s", ErrBadPayload, field, problem)
}

// prepare validates req.Payload for req.Mode and builds the backend body.
// forceStream is the backend-level streaming setting; a payload may also ask
// for streaming with "stream": true (the IICP response stays buffered).
func prepare(req Request, forceStream bool) (prepared, error) {
	obj, err := parseObject(req.Payload)
	if err != nil {
		return prepared{}, err
	}
	stream, err := optionalBool(obj, "stream")
	if err != nil {
		return prepared{}, err
	}
	p := prepared{mode: req.Mode, stream: stream || forceStream}
	switch req.Mode {
	case ModeChat:
		p.path = pathChat
		p.body, err = chatBody(obj, req)
	case ModeCompletion:
		p.path = pathCompletions
		p.body, err = completionBody(obj, req)
	case ModeEmbedding:
		p.path = pathEmbeddings
		p.stream = false // embeddings have no streaming form
		p.body, err = embeddingBody(obj, req)
	case ModeSummarise:
		p.path = pathChat
		p.body, p.summaryFormat, err = summariseBody(obj, req)
	default:
		return prepared{}, fmt.Errorf("%w: route mode %q is not supported", ErrBackend, req.Mode)
	}
	if err != nil {
		return prepared{}, err
	}
	p.body.setString("model", req.Model)
	if p.stream {
		p.body.set("stream", true)
		// Usage arrives in a final chunk only when asked for (OpenAI, vLLM,
		// Ollama ≥0.5, llama.cpp); servers that ignore it simply omit usage.
		p.body.set("stream_options", streamOptions)
	}
	return p, nil
}

// parseObject decodes the payload's top level, rejecting anything but an object.
func parseObject(payload json.RawMessage) (object, error) {
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, badPayload("", "payload must be a JSON object")
	}
	if !jsonscan.Valid(trimmed) {
		return nil, badPayload("", "payload is not valid JSON")
	}
	// What json.Unmarshal into a map would hold, in one walk: values are
	// the members' bytes (sharing the payload's array, which nothing
	// writes to); object.get returns a repeated name's last value.
	obj := make(object, 0, 4)
	eachMember(trimmed, func(key, val []byte) bool {
		k, ok := internJSONString(key)
		if !ok {
			_ = json.Unmarshal(key, &k) // a key of a valid document always decodes
		}
		obj = append(obj, member{name: k, val: val})
		return true
	})
	return obj, nil
}

// chatBody validates an llm:chat:v1 payload and builds /chat/completions.
func chatBody(obj object, req Request) (requestBody, error) {
	raw, ok := obj.get("messages")
	if !ok {
		return nil, badPayload("messages", "required")
	}
	if _, err := parseMessages(raw); err != nil {
		return nil, err
	}
	if err := checkSampling(obj); err != nil {
		return nil, err
	}
	body := forward(obj, chatForward)
	body.setRaw("messages", raw)
	if err := setMaxTokens(&body, obj, req.MaxTokens); err != nil {
		return nil, err
	}
	return body, nil
}

// chatMessage is one validated entry of payload.messages.
type chatMessage struct {
	Role    string
	Content json.RawMessage
}

// parseMessages checks messages against llm-chat-v1-input.json: a non-empty
// array of objects with an enumerated role and a present content.
func parseMessages(raw json.RawMessage) ([]chatMessage, error) {
	items, ok := messageItems(raw)
	if !ok {
		return nil, badPayload("messages", "must be an array of objects")
	}
	if len(items) == 0 {
		return nil, badPayload("messages", "must not be empty")
	}
	out := make([]chatMessage, len(items))
	for i, it := range items {
		role, ok := internJSONString(it.Role)
		if !ok {
			if err := json.Unmarshal(it.Role, &role); err != nil || !isJSONString(it.Role) {
				return nil, badPayload(fmt.Sprintf("messages[%d].role", i), "required string")
			}
		}
		if !chatRoles[role] {
			return nil, badPayload(fmt.Sprintf("messages[%d].role", i), "must be system, user, assistant or tool")
		}
		// A present "content": null decodes to the bytes "null"; absent stays nil.
		if it.Content == nil {
			return nil, badPayload(fmt.Sprintf("messages[%d].content", i), "required")
		}
		out[i] = chatMessage{Role: role, Content: it.Content}
	}
	return out, nil
}

// messageItem is one element of messages as a struct decode sees it: the
// raw role and content members, nil when absent.
type messageItem struct{ Role, Content json.RawMessage }

// messageItems splits raw (a member of a payload json.Valid accepted) the
// way json.Unmarshal into []struct{Role, Content json.RawMessage} would:
// an array whose elements are objects or null; member names match
// case-insensitively, a repeated one keeps its last value. ok=false where
// that decode fails (not an array, an element of another type).
func messageItems(raw json.RawMessage) ([]messageItem, bool) {
	items := make([]messageItem, 0, 4)
	ok := eachElement(raw, func(el []byte) bool {
		var it messageItem
		if el[0] == 'n' { // null decodes to the zero struct
			items = append(items, it)
			return true
		}
		ok := eachMember(el, func(key, val []byte) bool {
			switch {
			case jsonKeyFold(key, "role"):
				it.Role = val
			case jsonKeyFold(key, "content"):
				it.Content = val
			}
			return true
		})
		items = append(items, it)
		return ok
	})
	return items, ok
}

// jsonKeyFold reports whether a raw member key names field as encoding/json
// matches struct fields: after unescaping, ignoring case.
func jsonKeyFold(key []byte, field string) bool {
	if len(key) >= 2 && bytes.IndexByte(key, '\\') < 0 {
		return bytes.EqualFold(key[1:len(key)-1], []byte(field))
	}
	var k string
	return json.Unmarshal(key, &k) == nil && strings.EqualFold(k, field)
}

// completionBody validates an llm:completion:v1 payload for /completions.
func completionBody(obj object, req Request) (requestBody, error) {
	if _, err := requiredString(obj, "prompt"); err != nil {
		return nil, err
	}
	if err := checkSampling(obj); err != nil {
		return nil, err
	}
	body := forward(obj, completionForward)
	body.setRaw("prompt", obj.value("prompt"))
	if err := setMaxTokens(&body, obj, req.MaxTokens); err != nil {
		return nil, err
	}
	return body, nil
}

// embeddingBody validates an llm:embedding:v1 payload: input is a string or
// a non-empty array of strings.
func embeddingBody(obj object, _ Request) (requestBody, error) {
	if _, err := embeddingInputs(obj); err != nil {
		return nil, err
	}
	body := forward(obj, embeddingForward)
	body.setRaw("input", obj.value("input"))
	return body, nil
}

// embeddingInputs returns the embedding input strings.
func embeddingInputs(obj object) ([]string, error) {
	raw, ok := obj.get("input")
	if !ok {
		return nil, badPayload("input", "required")
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil && isJSONString(raw) {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil || many == nil {
		return nil, badPayload("input", "must be a string or an array of strings")
	}
	if len(many) == 0 {
		return nil, badPayload("input", "must not be an empty array")
	}
	return many, nil
}

// summariseInput is a validated llm:summarize:v1 payload.
type summariseInput struct {
	Text      string
	MaxLength int64
	Format    string
	Language  string
}

// parseSummarise validates against llm-summarize-v1-input.json, which (unlike
// the other LLM intents) sets additionalProperties: false.
func parseSummarise(obj object) (summariseInput, error) {
	var in summariseInput
	for _, m := range obj {
		switch m.name {
		case "text", "max_length", "format", "language", "stream":
		default:
			// The field name is caller data too, so it is not quoted.
			return in, badPayload("", "payload has a field llm:summarize:v1 does not define")
		}
	}
	var err error
	if in.Text, err = requiredString(obj, "text"); err != nil {
		return in, err
	}
	if in.MaxLength, err = optionalInt(obj, "max_length", 1); err != nil {
		return in, err
	}
	if in.Format, err = optionalString(obj, "format"); err != nil {
		return in, err
	}
	if in.Format != "" && !summariseFormats[in.Format] {
		return in, badPayload("format", "must be bullets, paragraph or headline")
	}
	if in.Language, err = optionalString(obj, "language"); err != nil {
		return in, err
	}
	if in.Language != "" && !isLanguageTag(in.Language) {
		return in, badPayload("language", "must be a language code such as \"en\" or \"pt-BR\"")
	}
	return in, nil
}

// summariseBody turns a summarise payload into a chat request: a system
// instruction plus the text as the user message.
func summariseBody(obj object, req Request) (requestBody, string, error) {
	in, err := parseSummarise(obj)
	if err != nil {
		return nil, "", err
	}
	format := in.Format
	if format == "" {
		format = "paragraph"
	}
	body := newRequestBody(4)
	body.set("messages", []map[string]string{
		{"role": "system", "content": summaryInstruction(in, format)},
		{"role": "user", "content": in.Text},
	})
	// Summaries should be faithful, not creative.
	body.set("temperature", 0.2)
	if req.MaxTokens > 0 {
		body.setInt("max_tokens", req.MaxTokens)
	}
	return body, format, nil
}

// summaryInstruction is the system prompt for summarise. The caller's
// max_length is a word target (registry payload_schema), given to the model
// as an instruction rather than enforced by truncation.
func summaryInstruction(in summariseInput, format string) string {
	var b strings.Builder
	b.WriteString("You are a summarisation engine. Summarise the user's text faithfully, without adding facts. ")
	switch format {
	case "bullets":
		b.WriteString("Answer as a short list of bullet points, one per line, each starting with \"- \". ")
	case "headline":
		b.WriteString("Answer with a single headline of one line. ")
	default:
		b.WriteString("Answer as one concise paragraph. ")
	}
	if in.MaxLength > 0 {
		fmt.Fprintf(&b, "Use at most %d words. ", in.MaxLength)
	}
	if in.Language != "" {
		// Language is caller data, but parseSummarise admits only a short
		// tag of letters, digits and '-', so it cannot smuggle instructions.
		fmt.Fprintf(&b, "Write the summary in the language with ISO 639-1 code %q. ", in.Language)
	} else {
		b.WriteString("Write the summary in the language of the text. ")
	}
	b.WriteString("Reply with the summary only.")
	return b.String()
}

// checkSampling validates the typed optional fields shared by chat and
// completion (max_tokens ≥ 1, 0 ≤ temperature ≤ 2, stop: array of strings).
func checkSampling(obj object) error {
	if _, err := optionalInt(obj, "max_tokens", 1); err != nil {
		return err
	}
	if raw, ok := obj.get("temperature"); ok {
		t, err := jsonNumber(raw)
		if err != nil {
			return badPayload("temperature", "must be a number")
		}
		if t < 0 || t > 2 {
			return badPayload("temperature", "must be between 0 and 2")
		}
	}
	if raw, ok := obj.get("stop"); ok {
		var stops []string
		if err := json.Unmarshal(raw, &stops); err != nil || stops == nil {
			return badPayload("stop", "must be an array of strings")
		}
	}
	return nil
}

// setMaxTokens caps the payload's max_tokens at the route limit, and applies
// the limit when the payload sets none, so one CALL never exceeds the
// max_tokens the node advertises (node-capability-format.md §3).
func setMaxTokens(body *requestBody, obj object, limit int64) error {
	want, err := optionalInt(obj, "max_tokens", 1)
	if err != nil {
		return err
	}
	switch {
	case want > 0 && (limit <= 0 || want <= limit):
		body.setInt("max_tokens", want)
	case limit > 0:
		body.setInt("max_tokens", limit)
	}
	return nil
}

// forward copies the allowed fields of obj into a new body.
func forward(obj object, allowed map[string]bool) requestBody {
	body := newRequestBody(len(obj) + 3)
	for _, m := range obj {
		if allowed[m.name] {
			body.setRaw(m.name, m.val)
		}
	}
	return body
}

func requiredString(obj object, field string) (string, error) {
	raw, ok := obj.get(field)
	if !ok {
		return "", badPayload(field, "required")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || !isJSONString(raw) {
		return "", badPayload(field, "must be a string")
	}
	return s, nil
}

func optionalString(obj object, field string) (string, error) {
	if _, ok := obj.get(field); !ok {
		return "", nil
	}
	return requiredString(obj, field)
}

func optionalBool(obj object, field string) (bool, error) {
	raw, ok := obj.get(field)
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return false, nil
	}
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, badPayload(field, "must be a boolean")
	}
	return v, nil
}

// optionalInt reads a JSON Schema "integer" (a number with no fraction,
// so 5.0 counts) of at least min; 0 means absent.
func optionalInt(obj object, field string, min int64) (int64, error) {
	raw, ok := obj.get(field)
	if !ok {
		return 0, nil
	}
	f, err := jsonNumber(raw)
	if err != nil {
		return 0, badPayload(field, "must be an integer")
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, badPayload(field, "must be an integer")
	}
	if int64(f) < min {
		return 0, badPayload(field, fmt.Sprintf("must be at least %d", min))
	}
	return int64(f), nil
}

// jsonNumber is json.Unmarshal of raw into a float64 that also rejects
// every non-number (null included). raw is a member of a payload json.Valid
// accepted, so a value starting like a number is a JSON number, and
// strconv.ParseFloat is what encoding/json runs on it.
func jsonNumber(raw json.RawMessage) (float64, error) {
	t := bytes.TrimSpace(raw)
	if !isJSONNumber(t) {
		return 0, errNotNumber
	}
	return strconv.ParseFloat(string(t), 64)
}

var errNotNumber = errors.New("not a JSON number")

func isJSONString(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '"'
}

func isJSONNumber(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && (t[0] == '-' || (t[0] >= '0' && t[0] <= '9'))
}

// isLanguageTag accepts ISO 639-1 codes and short BCP 47 tags ("en", "pt-BR").
func isLanguageTag(s string) bool {
	if len(s) < 2 || len(s) > 16 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
