package backend

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/meshnode/meshnode/internal/httperr"
)

// This file reads an OpenAI-style server-sent event stream (stream: true):
// `data: {chunk}` events ended by `data: [DONE]`, and assembles the chunks
// into one buffered generation, since a base IICP RESPONSE is not streamed
// (node-capability-format.md §3 supports_streaming defaults to false).

// maxSSELine bounds one SSE line; a chunk carries a few tokens, so 1 MiB
// only trips on a misbehaving server, never on a real one.
const maxSSELine = 1 << 20

// errLineTooLong is returned by readLine for a line above maxSSELine.
var errLineTooLong = errors.New("line too long")

// readStream consumes an SSE body of at most limit bytes and returns the
// assembled generation. chat selects delta.* (chat) or text (completion).
// A non-nil sink receives every chunk as it arrives, normalised
// (forwardChunk), so tokens reach the caller while the backend generates.
func readStream(op string, body io.Reader, limit int64, chat bool, sink Sink) (generation, error) {
	lr := &io.LimitedReader{R: body, N: limit + 1}
	br := bufio.NewReaderSize(lr, 32<<10)
	asm := newAssembler(chat)
	var data bytes.Buffer
	done := false
	for !done {
		line, err := readLine(br)
		if lr.N <= 0 {
			return generation{}, fmt.Errorf("%w: %s: stream exceeds %d bytes", ErrBackend, op, limit)
		}
		if errors.Is(err, errLineTooLong) {
			return generation{}, fmt.Errorf("%w: %s: stream line exceeds %d bytes", ErrBackend, op, maxSSELine)
		}
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			return generation{}, fmt.Errorf("%w: %s: reading stream: %w", ErrBackend, op, httperr.Transport("backend", err))
		}
		// A blank line (or the end of the body) dispatches the pending event.
		if len(line) == 0 || eof {
			if len(line) > 0 {
				appendData(&data, line)
			}
			if data.Len() > 0 {
				var derr error
				var c *streamChunk
				done, c, derr = asm.event(op, data.Bytes())
				if derr == nil && c != nil && sink != nil {
					derr = forwardChunk(sink, c, chat, asm.model)
				}
				if derr != nil {
					return generation{}, derr
				}
				data.Reset()
			}
			if eof {
				break
			}
			continue
		}
		appendData(&data, line)
	}
	if !done && !asm.finished() {
		return generation{}, fmt.Errorf("%w: %s: stream ended before [DONE]", ErrBackend, op)
	}
	return asm.generation(op)
}

// readLine reads one line without its terminator (LF or CRLF), bounded.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxSSELine {
			return nil, errLineTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimRight(line, "\r\n")
		return line, err
	}
}

// appendData adds the value of a `data:` field to the pending event; other
// fields (event, id, retry) and comments (":") carry nothing we use.
func appendData(data *bytes.Buffer, line []byte) {
	v, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	v = bytes.TrimPrefix(v, []byte(" "))
	if data.Len() > 0 {
		data.WriteByte('\n')
	}
	data.Write(v)
}

// assembler accumulates stream chunks per choice index.
type assembler struct {
	chat    bool
	id      string
	model   string
	usage   *usage
	choices map[int]*partial
}

// partial is one choice being assembled.
type partial struct {
	role      string
	text      strings.Builder
	reasoning strings.Builder
	tools     map[int]*toolCall
	finish    *string
}

// toolCall is a streamed tool call; arguments arrive in fragments.
type toolCall struct {
	ID   string
	Type string
	Name string
	Args strings.Builder
}

func newAssembler(chat bool) *assembler {
	return &assembler{chat: chat, choices: make(map[int]*partial)}
}

// streamChunk is one decoded `data:` event.
type streamChunk struct {
	ID      json.RawMessage `json:"id"`
	Model   json.RawMessage `json:"model"`
	Choices []struct {
		Index        int             `json:"index"`
		Text         json.RawMessage `json:"text"`
		FinishReason json.RawMessage `json:"finish_reason"`
		Delta        struct {
			Role      json.RawMessage `json:"role"`
			Content   json.RawMessage `json:"content"`
			Reasoning json.RawMessage `json:"reasoning_content"`
			ToolCalls []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
	} `json:"choices"`
	Usage json.RawMessage `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// event applies one event's data; done is true at [DONE]; c is the decoded
// chunk (nil at [DONE]).
func (a *assembler) event(op string, data []byte) (done bool, c *streamChunk, err error) {
	if string(bytes.TrimSpace(data)) == "[DONE]" {
		return true, nil, nil
	}
	c = new(streamChunk)
	if err := json.Unmarshal(data, c); err != nil {
		return false, nil, malformed(op, "stream chunk is not a JSON object")
	}
	if len(bytes.TrimSpace(c.Error)) > 0 && string(bytes.TrimSpace(c.Error)) != "null" {
		return false, nil, fmt.Errorf("%w: %s: backend reported an error in the stream", ErrBackend, op)
	}
	if s := lenientString(c.ID); s != "" {
		a.id = s
	}
	if s := lenientString(c.Model); s != "" {
		a.model = s
	}
	if u := lenientUsage(c.Usage); u != nil {
		a.usage = u
	}
	for _, ch := range c.Choices {
		if ch.Index < 0 || ch.Index > 1024 {
			return false, nil, malformed(op, "stream choice index out of range")
		}
		p := a.choices[ch.Index]
		if p == nil {
			p = &partial{tools: make(map[int]*toolCall)}
			a.choices[ch.Index] = p
		}
		if f := lenientStringPtr(ch.FinishReason); f != nil {
			p.finish = f
		}
		if !a.chat {
			p.text.WriteString(lenientString(ch.Text))
			continue
		}
		if r := lenientString(ch.Delta.Role); r != "" {
			p.role = r
		}
		p.text.WriteString(lenientString(ch.Delta.Content))
		p.reasoning.WriteString(lenientString(ch.Delta.Reasoning))
		for _, tc := range ch.Delta.ToolCalls {
			if tc.Index < 0 || tc.Index > 1024 {
				return false, nil, malformed(op, "stream tool call index out of range")
			}
			t := p.tools[tc.Index]
			if t == nil {
				t = &toolCall{}
				p.tools[tc.Index] = t
			}
			t.ID = firstNonEmpty(t.ID, tc.ID)
			t.Type = firstNonEmpty(t.Type, tc.Type)
			t.Name = firstNonEmpty(t.Name, tc.Function.Name)
			t.Args.WriteString(tc.Function.Arguments)
		}
	}
	return false, c, nil
}

// finished reports whether every choice has a finish reason: a stream cut
// after the last chunk but before [DONE] is still a complete answer.
func (a *assembler) finished() bool {
	if len(a.choices) == 0 {
		return false
	}
	for _, p := range a.choices {
		if p.finish == nil {
			return false
		}
	}
	return true
}

// generation builds the assembled response, choices in index order.
func (a *assembler) generation(op string) (generation, error) {
	if len(a.choices) == 0 {
		return generation{}, malformed(op, "stream carried no choices")
	}
	idx := make([]int, 0, len(a.choices))
	for i := range a.choices {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	g := generation{ID: a.id, Model: a.model, Usage: a.usage}
	for _, i := range idx {
		p := a.choices[i]
		c := choice{Index: i, FinishReason: p.finish}
		if !a.chat {
			text := p.text.String()
			c.Text = &text
		} else {
			msg, err := p.message()
			if err != nil {
				return generation{}, fmt.Errorf("%w: %s: encoding message: %v", ErrBackend, op, err)
			}
			c.Message = msg
		}
		g.Choices = append(g.Choices, c)
	}
	return g, nil
}

// message renders the assembled assistant message like a non-streamed one:
// content is null when the model only called tools.
func (p *partial) message() (json.RawMessage, error) {
	type fn struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	type call struct {
		ID       string `json:"id,omitempty"`
		Type     string `json:"type"`
		Function fn     `json:"function"`
	}
	msg := struct {
		Role      string  `json:"role"`
		Content   *string `json:"content"`
		Reasoning string  `json:"reasoning_content,omitempty"`
		ToolCalls []call  `json:"tool_calls,omitempty"`
	}{Role: firstNonEmpty(p.role, "assistant"), Reasoning: p.reasoning.String()}
	if text := p.text.String(); text != "" || len(p.tools) == 0 {
		msg.Content = &text
	}
	idx := make([]int, 0, len(p.tools))
	for i := range p.tools {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		t := p.tools[i]
		msg.ToolCalls = append(msg.ToolCalls, call{ID: t.ID, Type: firstNonEmpty(t.Type, "function"),
			Function: fn{Name: t.Name, Arguments: t.Args.String()}})
	}
	return json.Marshal(msg)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
