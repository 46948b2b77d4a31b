package backend

import (
	"context"
	"encoding/json"
	"fmt"
)

// This file lets a backend hand its output over while it generates: the
// engine puts a Sink in the request context when the caller negotiated the
// service-lifecycle profile (iicp-service-lifecycle-profile.md), and a
// streaming backend (OpenAI with stream: true) passes each chunk to it. The
// Result returned at the end is still the whole answer; the engine decides
// what the terminal event carries.

// Sink receives incremental result chunks, in order. An error stops the
// generation (the caller went away). Chunks are backend output, so they
// are payload: a Sink never logs them. A chunk is the Sink's to keep (the
// engine's task log retains it for resumption): a backend never reuses
// its bytes.
type Sink interface {
	Chunk(chunk json.RawMessage) error
}

type sinkKey struct{}

// WithSink returns ctx carrying s.
func WithSink(ctx context.Context, s Sink) context.Context {
	return context.WithValue(ctx, sinkKey{}, s)
}

// SinkFrom returns the Sink in ctx, nil when the caller did not ask for a
// stream.
func SinkFrom(ctx context.Context) Sink {
	s, _ := ctx.Value(sinkKey{}).(Sink)
	return s
}

// Streams reports whether mode can deliver incremental chunks (chat and
// completion; embeddings and summaries are one answer).
func Streams(m Mode) bool { return m == ModeChat || m == ModeCompletion }

// chunkDelta is a normalised chat delta: only the fields the buffered
// result keeps (role, content, reasoning, tool calls).
type chunkDelta struct {
	Role      string          `json:"role,omitempty"`
	Content   *string         `json:"content,omitempty"`
	Reasoning string          `json:"reasoning_content,omitempty"`
	ToolCalls []chunkToolCall `json:"tool_calls,omitempty"`
}

type chunkToolCall struct {
	Index    int    `json:"index"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments,omitempty"`
	} `json:"function"`
}

type chunkChoice struct {
	Index        int         `json:"index"`
	Delta        *chunkDelta `json:"delta,omitempty"`
	Text         *string     `json:"text,omitempty"`
	FinishReason *string     `json:"finish_reason"`
}

// StreamChunk is the partial result of llm:chat:v1 and
// llm:completion:v1 under the lifecycle profile: an OpenAI-shaped
// chat.completion.chunk (or text_completion chunk) whose choices carry only
// what is new. Concatenating the deltas in sequence order gives the
// buffered result (docs/spec-decisions.md ## service-lifecycle profile).
type StreamChunk struct {
	Object  string        `json:"object"`
	Model   string        `json:"model,omitempty"`
	Choices []chunkChoice `json:"choices"`
	Usage   *usage        `json:"usage,omitempty"`
}

// forwardChunk normalises one backend chunk and hands it to sink. Chunks
// with nothing new (keep-alives, empty deltas) are dropped.
func forwardChunk(sink Sink, c *streamChunk, chat bool, model string) error {
	out := StreamChunk{Object: "chat.completion.chunk", Model: model, Usage: lenientUsage(c.Usage)}
	if !chat {
		out.Object = "text_completion"
	}
	for _, ch := range c.Choices {
		cc := chunkChoice{Index: ch.Index, FinishReason: lenientStringPtr(ch.FinishReason)}
		empty := cc.FinishReason == nil
		if !chat {
			t := lenientString(ch.Text)
			cc.Text = &t
			empty = empty && t == ""
		} else {
			d := &chunkDelta{Role: lenientString(ch.Delta.Role), Reasoning: lenientString(ch.Delta.Reasoning)}
			if t := lenientString(ch.Delta.Content); t != "" {
				d.Content = &t
			}
			for _, tc := range ch.Delta.ToolCalls {
				ct := chunkToolCall{Index: tc.Index, ID: tc.ID, Type: tc.Type}
				ct.Function.Name, ct.Function.Arguments = tc.Function.Name, tc.Function.Arguments
				d.ToolCalls = append(d.ToolCalls, ct)
			}
			cc.Delta = d
			empty = empty && d.Role == "" && d.Content == nil && d.Reasoning == "" && len(d.ToolCalls) == 0
		}
		if !empty {
			out.Choices = append(out.Choices, cc)
		}
	}
	if len(out.Choices) == 0 && out.Usage == nil {
		return nil
	}
	if out.Choices == nil {
		out.Choices = []chunkChoice{}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("%w: encoding stream chunk: %v", ErrBackend, err)
	}
	return sink.Chunk(b)
}
