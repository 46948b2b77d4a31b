package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/meshnode/meshnode/wire"
)

// sseWriter writes a streamed answer as OpenAI server-sent events: one
// `data: {chunk}` per chunk the serving node emitted, flushed at once, and
// `data: [DONE]` at the end. The status line and headers go out with the
// first chunk, so a call that fails before any output still gets a proper
// HTTP error status.
type sseWriter struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	kind         kind
	id           string
	created      int64
	model        string
	includeUsage bool
	started      bool
	buf          bytes.Buffer
}

var errClientGone = errors.New("openai: client went away")

// chunkShape is a streamed chunk as the serving node sends it.
type chunkShape struct {
	Object  string            `json:"object"`
	Model   string            `json:"model,omitempty"`
	Choices []json.RawMessage `json:"choices"`
	Usage   json.RawMessage   `json:"usage,omitempty"`
}

// outChunk is the chunk the client gets.
type outChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []json.RawMessage `json:"choices"`
	Usage   json.RawMessage   `json:"usage,omitempty"`
}

// chunk forwards one chunk. Usage-only chunks go out only when the client
// asked (stream_options.include_usage), as OpenAI does.
func (s *sseWriter) chunk(raw json.RawMessage) error {
	var c chunkShape
	if err := json.Unmarshal(raw, &c); err != nil {
		return errors.New("openai: undecodable chunk from the serving node")
	}
	if c.Model != "" {
		s.model = c.Model
	}
	if !s.includeUsage {
		c.Usage = nil
	}
	if len(c.Choices) == 0 && c.Usage == nil {
		return nil
	}
	if c.Choices == nil {
		c.Choices = []json.RawMessage{}
	}
	object := "chat.completion.chunk"
	if s.kind == kindCompletion {
		object = "text_completion"
	}
	return s.send(outChunk{ID: s.id, Object: object, Created: s.created, Model: s.model, Choices: c.Choices, Usage: c.Usage})
}

// send writes one event and flushes it to the client.
func (s *sseWriter) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return errors.New("openai: chunk could not be encoded")
	}
	return s.data(b)
}

func (s *sseWriter) data(b []byte) error {
	if !s.started {
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // reverse proxies: do not buffer the stream
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	s.buf.Reset()
	s.buf.WriteString("data: ")
	s.buf.Write(b)
	s.buf.WriteString("\n\n")
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return errClientGone
	}
	if err := s.rc.Flush(); err != nil {
		return errClientGone
	}
	return nil
}

// finish ends a successful stream. A node that could not stream (a base
// transport, a backend without streaming) sent its whole answer in the
// terminal RESPONSE: it goes out as one chunk.
func (s *sseWriter) finish(resp *wire.Response) error {
	if len(resp.Result) > 0 && !isNull(resp.Result) {
		if err := s.whole(resp); err != nil {
			return err
		}
	}
	return s.data([]byte("[DONE]"))
}

// whole converts a buffered chat or completion result into chunks.
func (s *sseWriter) whole(resp *wire.Response) error {
	var full struct {
		Model   string `json:"model"`
		Choices []struct {
			Index   int `json:"index"`
			Message *struct {
				Role      string          `json:"role"`
				Content   *string         `json:"content"`
				ToolCalls json.RawMessage `json:"tool_calls,omitempty"`
			} `json:"message"`
			Text         *string         `json:"text"`
			FinishReason json.RawMessage `json:"finish_reason"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(resp.Result, &full); err != nil {
		return errors.New("openai: undecodable result from the serving node")
	}
	out := chunkShape{Model: full.Model, Usage: full.Usage}
	for _, c := range full.Choices {
		m := map[string]any{"index": c.Index, "finish_reason": c.FinishReason}
		if c.Message != nil {
			d := map[string]any{"role": c.Message.Role, "content": c.Message.Content}
			if len(c.Message.ToolCalls) > 0 {
				d["tool_calls"] = withIndexes(c.Message.ToolCalls)
			}
			m["delta"] = d
		} else {
			m["text"] = c.Text
		}
		b, _ := json.Marshal(m)
		out.Choices = append(out.Choices, b)
	}
	b, _ := json.Marshal(out)
	return s.chunk(b)
}

// withIndexes adds the index streamed tool calls carry.
func withIndexes(raw json.RawMessage) []map[string]any {
	var calls []map[string]any
	_ = json.Unmarshal(raw, &calls)
	for i := range calls {
		calls[i]["index"] = i
	}
	return calls
}

// fail reports an error: as an HTTP error before any output, as a final
// `data: {"error":…}` event after it (the status line is gone by then).
func (s *sseWriter) fail(e *wire.Error) {
	if !s.started {
		writeError(s.w, e)
		return
	}
	_ = s.send(map[string]apiError{"error": toAPIError(e)})
}
