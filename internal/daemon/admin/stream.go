package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// Streamed calls (`meshnode call` on a terminal): POST /admin/v1/call with
// "stream": true answers application/x-ndjson, one line per result chunk
// as the serving node produces it ({"chunk":…}), then one final line with
// the CallResult ({"result":…}) or the error ({"error":…}). A failure
// before any chunk keeps its ordinary status and error body.

// StreamBackend is a Backend that can stream a call's output.
type StreamBackend interface {
	CallStream(ctx context.Context, req CallRequest, chunk func(json.RawMessage) error) (*CallResult, *wire.Error)
}

// MediaNDJSON is the streamed call's media type.
const MediaNDJSON = "application/x-ndjson"

// streamLine is one line of a streamed call.
type streamLine struct {
	Chunk  json.RawMessage `json:"chunk,omitempty"`
	Result *CallResult     `json:"result,omitempty"`
	Error  *wire.Error     `json:"error,omitempty"`
}

func (s *Server) callStream(w http.ResponseWriter, r *http.Request, sb StreamBackend, req CallRequest) {
	rc := http.NewResponseController(w)
	started := false
	write := func(l streamLine) error {
		if !started {
			w.Header().Set("Content-Type", MediaNDJSON)
			w.WriteHeader(http.StatusOK)
			started = true
		}
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
		return rc.Flush()
	}
	res, werr := sb.CallStream(r.Context(), req, func(c json.RawMessage) error { return write(streamLine{Chunk: c}) })
	switch {
	case werr != nil && !started:
		httpx.WriteError(w, werr)
	case werr != nil:
		_ = write(streamLine{Error: werr})
	default:
		_ = write(streamLine{Result: res})
	}
}

// CallStream runs a task through the node and hands each result chunk to
// chunk as it arrives. The returned CallResult is the final answer (after
// streamed chunks its result is empty); a node that cannot stream answers
// as Call does.
func (c *Client) CallStream(ctx context.Context, req CallRequest, chunk func(json.RawMessage) error) (*CallResult, error) {
	req.Stream = true
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Runtime.AdminURL+"/admin/v1/call", bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("admin request: %w", err)
	}
	hr.Header.Set("Authorization", "Bearer "+c.token)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w (admin endpoint %s unreachable)", ErrNotRunning, c.Runtime.AdminURL)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != MediaNDJSON {
		var res CallResult
		return &res, decodeReply(resp, &res)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxReply)
	for sc.Scan() {
		var l streamLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("decoding admin stream: %w", err)
		}
		switch {
		case l.Error != nil:
			return nil, l.Error
		case l.Result != nil:
			return l.Result, nil
		case len(l.Chunk) > 0:
			if err := chunk(l.Chunk); err != nil {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("admin stream ended without a result: %v", sc.Err())
}
