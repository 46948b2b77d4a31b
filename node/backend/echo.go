package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// EchoModel is the model name the echo backend reports everywhere (health,
// capabilities, RESPONSE model_used), so no consumer mistakes it for an LLM.
const EchoModel = wire.EchoModel

// Echo is the built-in demo/test backend. It runs no model: chat answers
// with the last user message, completion with the prompt, summarise with the
// first max_length words of the text. Output and token counts (one token per
// whitespace-separated word) are deterministic. It validates payloads exactly
// like the OpenAI client, so ErrBadPayload behaves the same on both.
type Echo struct {
	delay time.Duration
}

// EchoOption configures an Echo backend.
type EchoOption func(*Echo)

// EchoDelay makes every Do take d (honouring ctx), to exercise deadlines
// and concurrency limits in tests and demos.
func EchoDelay(d time.Duration) EchoOption {
	return func(e *Echo) { e.delay = max(d, 0) }
}

// NewEcho returns the echo backend.
func NewEcho(opts ...EchoOption) *Echo {
	e := &Echo{}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Name implements Backend.
func (e *Echo) Name() string { return "echo" }

// InferenceEngine labels the echo backend in capabilities (advisory field;
// directories accept unknown values, iicp-core.md §2.1).
func (e *Echo) InferenceEngine() string { return EchoModel }

// String describes the backend for health output.
func (e *Echo) String() string { return "echo (built-in, no model)" }

// GeneratedByAI is false: echo reflects the caller's input, so RESPONSE
// generated_by_ai must not claim model output (iicp-core.md §3.2).
func (e *Echo) GeneratedByAI() bool { return false }

// Check implements Backend; the echo backend is always ready.
func (e *Echo) Check(ctx context.Context) error { return ctx.Err() }

// errEchoEmbedding: echo has no vectors to offer and will not invent any.
var errEchoEmbedding = fmt.Errorf("%w: the echo backend does not compute embeddings", ErrBackend)

// Do implements Backend.
func (e *Echo) Do(ctx context.Context, req Request) (Result, error) {
	if err := e.wait(ctx); err != nil {
		return Result{}, err
	}
	obj, err := parseObject(req.Payload)
	if err != nil {
		return Result{}, err
	}
	model := req.Model
	if model == "" {
		model = EchoModel
	}
	switch req.Mode {
	case ModeChat:
		return e.chat(obj, req, model)
	case ModeCompletion:
		return e.completion(obj, req, model)
	case ModeSummarise:
		return e.summarise(obj, req, model)
	case ModeEmbedding:
		if _, err := embeddingInputs(obj); err != nil {
			return Result{}, err
		}
		return Result{}, errEchoEmbedding
	default:
		return Result{}, fmt.Errorf("%w: route mode %q is not supported", ErrBackend, req.Mode)
	}
}

// wait applies the configured delay, returning early on ctx.
func (e *Echo) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: echo: %w", ErrBackend, err)
	}
	if e.delay == 0 {
		return nil
	}
	t := time.NewTimer(e.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: echo: %w", ErrBackend, ctx.Err())
	}
}

func (e *Echo) chat(obj object, req Request, model string) (Result, error) {
	raw, ok := obj.get("messages")
	if !ok {
		return Result{}, badPayload("messages", "required")
	}
	msgs, err := parseMessages(raw)
	if err != nil {
		return Result{}, err
	}
	if err := checkSampling(obj); err != nil {
		return Result{}, err
	}
	var prompt int64
	last := ""
	for _, m := range msgs {
		text := contentText(m.Content)
		prompt += countWords(text)
		if m.Role == "user" {
			last = text
		}
	}
	limit, err := effectiveLimit(obj, req.MaxTokens)
	if err != nil {
		return Result{}, err
	}
	out, finish := truncateWords(last, limit)
	msg, _ := json.Marshal(map[string]string{"role": "assistant", "content": out})
	g := generation{Model: model, Choices: []choice{{Message: msg, FinishReason: &finish}},
		Usage: echoUsage(prompt, countWords(out))}
	return encodeGeneration(prepared{mode: ModeChat}, g, model)
}

func (e *Echo) completion(obj object, req Request, model string) (Result, error) {
	prompt, err := requiredString(obj, "prompt")
	if err != nil {
		return Result{}, err
	}
	if err := checkSampling(obj); err != nil {
		return Result{}, err
	}
	limit, err := effectiveLimit(obj, req.MaxTokens)
	if err != nil {
		return Result{}, err
	}
	out, finish := truncateWords(prompt, limit)
	g := generation{Model: model, Choices: []choice{{Text: &out, FinishReason: &finish}},
		Usage: echoUsage(countWords(prompt), countWords(out))}
	return encodeGeneration(prepared{mode: ModeCompletion}, g, model)
}

func (e *Echo) summarise(obj object, req Request, model string) (Result, error) {
	in, err := parseSummarise(obj)
	if err != nil {
		return Result{}, err
	}
	format := in.Format
	if format == "" {
		format = "paragraph"
	}
	limit := in.MaxLength
	if req.MaxTokens > 0 && (limit == 0 || req.MaxTokens < limit) {
		limit = req.MaxTokens
	}
	out, finish := truncateWords(in.Text, limit)
	msg, _ := json.Marshal(map[string]string{"role": "assistant", "content": out})
	g := generation{Model: model, Choices: []choice{{Message: msg, FinishReason: &finish}},
		Usage: echoUsage(countWords(in.Text), countWords(out))}
	return encodeGeneration(prepared{mode: ModeSummarise, summaryFormat: format}, g, model)
}

// effectiveLimit is the payload's max_tokens capped by the route limit.
func effectiveLimit(obj object, routeMax int64) (int64, error) {
	var body requestBody
	if err := setMaxTokens(&body, obj, routeMax); err != nil {
		return 0, err
	}
	v, _ := body.get("max_tokens")
	n, _ := v.(int64)
	return n, nil
}

// contentText flattens a message content: a string, or an array of parts
// whose "text" parts are joined (OpenAI multi-part content).
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, " ")
}

// countWords is the echo backend's deterministic token count.
func countWords(s string) int64 { return int64(len(strings.Fields(s))) }

// truncateWords keeps the first limit words (0 = all) and reports the
// OpenAI finish_reason: "length" when cut, else "stop".
func truncateWords(s string, limit int64) (string, string) {
	if limit <= 0 {
		return s, "stop"
	}
	words := strings.Fields(s)
	if int64(len(words)) <= limit {
		return s, "stop"
	}
	return strings.Join(words[:limit], " "), "length"
}

func echoUsage(prompt, completion int64) *usage {
	return &usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

// IsEcho reports whether b is the built-in echo backend.
func IsEcho(b Backend) bool {
	_, ok := b.(*Echo)
	return ok
}
