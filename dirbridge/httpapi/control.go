package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/wire"
)

// POST /v1/control: the HTTP cancellation resource of the service-lifecycle
// profile (iicp-service-lifecycle-profile.md §5–§6; framing §5.2 maps
// CONTROL to this path). The body is only {"action":"cancel","task_id",
// "reason"}; the caller is authorized as for a task of that task's intent
// (Authorization: Bearer <node token> or X-IICP-Consumer-Token) and must be
// the principal that submitted it. The answer is the task's terminal
// RESPONSE — `cancelled`, or the outcome it had already reached (a late
// cancel changes nothing, LIFECYCLE-14) — with 200 whatever outcome it
// names, its result left out; or 404 not_found for a task that is unknown
// or another caller's, 401, 422 for a malformed body.

// CancelEngine is implemented by engines that cancel tasks on request
// (node.Engine).
type CancelEngine interface {
	Cancel(ctx context.Context, cc *wire.CancelControl, auth *wire.Auth, caller wire.Caller) *wire.Response
}

const (
	pathControl = "/v1/control"
	// maxControlBody bounds a cancellation body (three short strings).
	maxControlBody = 4 << 10
	// cancelWait bounds how long a cancel waits for the task's terminal event.
	cancelWait = 5 * time.Second
)

func (s *Server) handleControl(w http.ResponseWriter, r *http.Request) {
	w.Header()["Cache-Control"] = noStoreValue
	if isCBOR, ok := requestMedia(r.Header.Get("Content-Type")); !ok || isCBOR {
		writeError(w, wire.NewError(wire.CodeUnsupportedMedia, "Content-Type must be application/json"), false)
		return
	}
	if werr := s.rateLimit(r); werr != nil {
		writeError(w, werr, false)
		return
	}
	body, werr := readBody(w, r, maxControlBody)
	if werr != nil {
		writeError(w, werr, false)
		return
	}
	cc, werr := wire.DecodeCancelJSON(body)
	if werr != nil {
		writeError(w, werr, false)
		return
	}
	ce, ok := s.eng.(CancelEngine)
	if !ok {
		writeError(w, wire.NewError(wire.CodeNotFound, "no such task on this node"), false)
		return
	}
	var auth *wire.Auth
	if tok, ok := bearer(r.Header.Get("Authorization")); ok {
		auth = &wire.Auth{NodeToken: tok}
	}
	ct := r.Header.Get(hdrConsumerToken)
	if len(ct) > maxConsumerTokenHeader {
		ct = ""
	}
	ip, _ := ipKey(r.RemoteAddr)
	caller := wire.Caller{ConsumerToken: ct, RemoteIP: ip, Origin: r.Header.Get("Origin"), Transport: "http"}
	ctx, cancel := context.WithTimeout(r.Context(), cancelWait)
	defer cancel()
	resp := ce.Cancel(ctx, cc, auth, caller)
	if resp.Error == nil {
		// An acknowledgement, not the answer: the result never travels
		// here (it may be an IICP-CX task's output, sealed only on its
		// own stream).
		resp.Result = nil
	}
	if resp.Lifecycle == nil {
		s.writeResponse(w, resp, false, encodeResponse) // refused: its error status
		return
	}
	// The cancel was served: 200 with the task's terminal event, whatever
	// outcome it names.
	body, err := encodeResponse(resp)
	if err != nil {
		writeError(w, wire.NewError(wire.CodeInternal, "encoding the response failed"), false)
		return
	}
	writeBody(w, http.StatusOK, mediaJSON, body)
}

// maxCancelAnswer bounds the answer to a cancellation (a RESPONSE without
// result).
const maxCancelAnswer = 64 << 10

// CancelTask asks node to cancel the streamed task taskID (POST
// /v1/control), authorized by consumerToken (a token minted for node, or
// "" on a node that needs none). It returns the node's answer: the task's
// terminal RESPONSE, whose Lifecycle names the outcome (cancelled, or the
// one it had already reached), with a nil error; or a refusal RESPONSE
// together with its *wire.Error (not_found, unauthorized…).
func CancelTask(ctx context.Context, hc *http.Client, node wire.NodeSummary, taskID, reason, consumerToken string) (*wire.Response, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	cc := &wire.CancelControl{Action: wire.ActionCancel, TaskID: taskID, Reason: reason}
	if werr := cc.Check(); werr != nil {
		return nil, werr
	}
	body, err := json.Marshal(cc)
	if err != nil {
		return nil, fmt.Errorf("encoding cancel: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(node.Endpoint, "/")+pathControl, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building cancel request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if consumerToken != "" {
		req.Header.Set(HeaderConsumerToken, consumerToken)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, httperr.Transport("node", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCancelAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("reading cancel answer: %w", httperr.Transport("node", err))
	}
	if len(data) > maxCancelAnswer {
		return nil, errors.New("the node's cancel answer is too large")
	}
	r, werr := wire.DecodeResponseJSON(data)
	if werr != nil {
		return nil, fmt.Errorf("node answered the cancel with HTTP %d and no RESPONSE", resp.StatusCode)
	}
	r.TaskID = taskID
	if r.Lifecycle == nil && r.Error != nil {
		return r, r.Error
	}
	return r, nil
}
