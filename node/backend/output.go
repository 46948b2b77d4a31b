package backend

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// This file turns OpenAI-compatible response bodies into IICP results shaped
// by the registry output schemas (registry/schemas/llm-*-v1-output.json).
// Backends differ in the optional fields they send (created as a float,
// usage null, index missing), so decoding is lenient about extras and strict
// about the parts the output schemas require. Errors never quote the body.

// usage is the OpenAI token accounting object.
type usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// tokens is the figure reported as RESPONSE metrics.tokens_used.
func (u *usage) tokens() int64 {
	if u == nil {
		return 0
	}
	if u.TotalTokens > 0 {
		return u.TotalTokens
	}
	return u.PromptTokens + u.CompletionTokens
}

// choice is one normalised choice: Message for chat, Text for completion.
type choice struct {
	Index        int             `json:"index"`
	Message      json.RawMessage `json:"message,omitempty"`
	Text         *string         `json:"text,omitempty"`
	FinishReason *string         `json:"finish_reason"`
}

// generation is a normalised chat or completion response.
type generation struct {
	ID      string
	Model   string
	Choices []choice
	Usage   *usage
}

// chatResult is the llm:chat:v1 result object.
type chatResult struct {
	ID      string   `json:"id,omitempty"`
	Object  string   `json:"object"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
}

// summaryResult is the llm:summarize:v1 result: the summary text up front,
// plus the chat-shaped choices so chat-aware clients can read it too. The
// registry gives this intent the generic JSON result schema.
type summaryResult struct {
	Summary string   `json:"summary"`
	Format  string   `json:"format"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
}

// embeddingItem is one vector of the llm:embedding:v1 result.
type embeddingItem struct {
	Object    string    `json:"object"`
	Index     int       `json:"index"`
	Embedding []float64 `json:"embedding"`
}

// embeddingResult is the llm:embedding:v1 result object.
type embeddingResult struct {
	Object string          `json:"object"`
	Model  string          `json:"model"`
	Data   []embeddingItem `json:"data"`
	Usage  *usage          `json:"usage,omitempty"`
}

// malformed is the error for a backend body that does not fit the API shape.
func malformed(op, why string) error {
	return fmt.Errorf("%w: %s: malformed response: %s", ErrBackend, op, why)
}

// wireGeneration is the lenient decode shape of chat and completion bodies.
type wireGeneration struct {
	ID      json.RawMessage   `json:"id"`
	Model   json.RawMessage   `json:"model"`
	Choices []json.RawMessage `json:"choices"`
	Usage   json.RawMessage   `json:"usage"`
}

// decodeGeneration parses a non-streamed chat (chat=true) or completion body.
func decodeGeneration(op string, body []byte, chat bool) (generation, error) {
	var w wireGeneration
	if err := json.Unmarshal(body, &w); err != nil {
		return generation{}, malformed(op, "not a JSON object with a choices array")
	}
	if len(w.Choices) == 0 {
		return generation{}, malformed(op, "no choices")
	}
	g := generation{ID: lenientString(w.ID), Model: lenientString(w.Model), Usage: lenientUsage(w.Usage)}
	for i, raw := range w.Choices {
		c, err := decodeChoice(op, raw, i, chat)
		if err != nil {
			return generation{}, err
		}
		g.Choices = append(g.Choices, c)
	}
	return g, nil
}

// decodeChoice checks one choice against the output schema: chat needs a
// message object, completion a text string.
func decodeChoice(op string, raw json.RawMessage, pos int, chat bool) (choice, error) {
	var w struct {
		Index        *int            `json:"index"`
		Message      json.RawMessage `json:"message"`
		Text         json.RawMessage `json:"text"`
		FinishReason json.RawMessage `json:"finish_reason"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return choice{}, malformed(op, fmt.Sprintf("choices[%d] is not an object", pos))
	}
	c := choice{Index: pos, FinishReason: lenientStringPtr(w.FinishReason)}
	if w.Index != nil && *w.Index >= 0 {
		c.Index = *w.Index
	}
	if chat {
		msg := bytes.TrimSpace(w.Message)
		if len(msg) == 0 || msg[0] != '{' {
			return choice{}, malformed(op, fmt.Sprintf("choices[%d].message is not an object", pos))
		}
		c.Message = json.RawMessage(msg)
		return c, nil
	}
	var text string
	if err := json.Unmarshal(w.Text, &text); err != nil || !isJSONString(w.Text) {
		return choice{}, malformed(op, fmt.Sprintf("choices[%d].text is not a string", pos))
	}
	c.Text = &text
	return c, nil
}

// encodeGeneration builds the Result for chat, completion or summarise.
func encodeGeneration(p prepared, g generation, reqModel string) (Result, error) {
	model := g.Model
	if model == "" {
		model = reqModel
	}
	var out []byte
	switch p.mode {
	case ModeSummarise:
		summary, err := firstContent(g)
		if err != nil {
			return Result{}, err
		}
		v := summaryResult{Summary: summary, Format: p.summaryFormat, Model: model, Choices: g.Choices, Usage: g.Usage}
		if out, err = json.Marshal(v); err != nil {
			return Result{}, fmt.Errorf("%w: encoding result: %v", ErrBackend, err)
		}
	case ModeCompletion:
		out = appendChatResult(nil, &chatResult{ID: g.ID, Object: "text_completion", Model: model, Choices: g.Choices, Usage: g.Usage})
	default:
		out = appendChatResult(nil, &chatResult{ID: g.ID, Object: "chat.completion", Model: model, Choices: g.Choices, Usage: g.Usage})
	}
	return Result{Output: out, Model: model, TokensUsed: g.Usage.tokens()}, nil
}

// firstContent is the text content of the first choice's message.
func firstContent(g generation) (string, error) {
	var msg struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(g.Choices[0].Message, &msg); err != nil {
		return "", malformed("summarise", "choices[0].message is not an object")
	}
	var s string
	if err := json.Unmarshal(msg.Content, &s); err != nil || !isJSONString(msg.Content) {
		return "", malformed("summarise", "choices[0].message.content is not a string")
	}
	return s, nil
}

// decodeEmbedding parses an /embeddings body into the embedding result.
func decodeEmbedding(body []byte, reqModel string) (Result, error) {
	const op = "embeddings"
	var w struct {
		Model json.RawMessage `json:"model"`
		Data  []struct {
			Index     *int      `json:"index"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Usage json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return Result{}, malformed(op, "not an object with a data array of number vectors")
	}
	if len(w.Data) == 0 {
		return Result{}, malformed(op, "no data")
	}
	res := embeddingResult{Object: "list", Model: lenientString(w.Model), Usage: lenientUsage(w.Usage)}
	if res.Model == "" {
		res.Model = reqModel
	}
	for i, d := range w.Data {
		if d.Embedding == nil {
			return Result{}, malformed(op, fmt.Sprintf("data[%d].embedding missing", i))
		}
		item := embeddingItem{Object: "embedding", Index: i, Embedding: d.Embedding}
		if d.Index != nil && *d.Index >= 0 {
			item.Index = *d.Index
		}
		res.Data = append(res.Data, item)
	}
	out, err := json.Marshal(res)
	if err != nil {
		return Result{}, fmt.Errorf("%w: encoding result: %v", ErrBackend, err)
	}
	return Result{Output: out, Model: res.Model, TokensUsed: res.Usage.tokens()}, nil
}

// lenientString reads a JSON string, or "" for anything else.
func lenientString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func lenientStringPtr(raw json.RawMessage) *string {
	if !isJSONString(raw) {
		return nil
	}
	s := lenientString(raw)
	return &s
}

// lenientUsage reads a usage object; token counts sent as floats or a
// missing/odd usage are tolerated (usage is optional in every output schema).
func lenientUsage(raw json.RawMessage) *usage {
	var w struct {
		Prompt     *float64 `json:"prompt_tokens"`
		Completion *float64 `json:"completion_tokens"`
		Total      *float64 `json:"total_tokens"`
	}
	if len(bytes.TrimSpace(raw)) == 0 || json.Unmarshal(raw, &w) != nil {
		return nil
	}
	if w.Prompt == nil && w.Completion == nil && w.Total == nil {
		return nil
	}
	u := &usage{PromptTokens: nonNeg(w.Prompt), CompletionTokens: nonNeg(w.Completion), TotalTokens: nonNeg(w.Total)}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u
}

func nonNeg(f *float64) int64 {
	if f == nil || *f < 0 || *f > 1<<53 {
		return 0
	}
	return int64(*f)
}
