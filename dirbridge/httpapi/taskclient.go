package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/meshnode/meshnode/cx"
	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/internal/interop"
	"github.com/meshnode/meshnode/wire"
)

// HTTP task client limits.
const (
	// maxTaskResponse bounds a RESPONSE read from a node (the mesh uses the
	// same 8 MiB bound for RESPONSE frames).
	maxTaskResponse = 8 << 20
	// HeaderConsumerToken carries a directory-issued consumer token
	// (iicp-core.md §3.1 errata v1.5.2).
	HeaderConsumerToken = "X-IICP-Consumer-Token"
	// HeaderLastEventID resumes a lifecycle event stream after the
	// sequence it names (the Server-Sent Events reconnection header).
	HeaderLastEventID = "Last-Event-ID"
)

// PostStatus says what happened on the wire for one POST /v1/task.
type PostStatus struct {
	// HTTPStatus is the node's status code (0: no answer).
	HTTPStatus int
	// Encrypted reports that the payload was sealed with IICP-CX.
	Encrypted bool
}

// PostTask sends one CALL to node's POST /v1/task (iicp-core.md §3) and
// decodes the answer in any dialect deployed nodes speak: the spec
// RESPONSE, "status":"completed", IICP-E021 at 429, nested or top-level
// error codes, HTML error pages (interop.DecodeTaskAnswer); a 504 is a
// timeout. The body carries constraints.qos and its qos_class mirror
// (interop.CompatCallJSON).
//
// The payload is sealed to node.CXPublicKey when the node advertises one
// and the sealed answer opened (iicp-confidentiality.md §5, §5a.3). A
// keyless node gets plaintext only when allowPlaintext is set; otherwise, as
// for a key that is present but unusable, nothing is sent and err is the
// *wire.Error (IICP-E063/E064). consumerToken, when set, goes in
// X-IICP-Consumer-Token (LOG-FORBIDDEN). err is set only when no IICP
// answer arrived; it never carries body text.
func PostTask(ctx context.Context, hc *http.Client, node wire.NodeSummary, call *wire.Call, consumerToken string, allowPlaintext bool) (*wire.Response, PostStatus, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, opener, st, err := newTaskRequest(ctx, node, call, consumerToken, allowPlaintext, "application/json")
	if err != nil {
		return nil, st, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, st, httperr.Transport("node", err)
	}
	defer resp.Body.Close()
	st.HTTPStatus = resp.StatusCode
	r, err := readAnswer(resp, opener, call.TaskID)
	return r, st, err
}

// newTaskRequest encodes call (sealed to node's IICP-CX key when it has
// one) into a POST /v1/task request.
func newTaskRequest(ctx context.Context, node wire.NodeSummary, call *wire.Call, consumerToken string, allowPlaintext bool, accept string) (*http.Request, *cx.ResponseOpener, PostStatus, error) {
	var st PostStatus
	plain, err := interop.CompatCallJSON(call)
	if err != nil {
		return nil, nil, st, fmt.Errorf("encoding call: %w", err)
	}
	policy := cx.RequireEncryption
	if allowPlaintext {
		policy = cx.AllowPlaintext
	}
	body, opener, werr := cx.Prepare(plain, node.CXPublicKey, policy)
	if werr != nil {
		return nil, nil, st, werr
	}
	st.Encrypted = opener != nil
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(node.Endpoint, "/")+"/v1/task", bytes.NewReader(body))
	if err != nil {
		return nil, nil, st, fmt.Errorf("building task request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	if consumerToken != "" {
		req.Header.Set(HeaderConsumerToken, consumerToken)
	}
	return req, opener, st, nil
}

// readAnswer reads a buffered answer in any deployed dialect.
func readAnswer(resp *http.Response, opener *cx.ResponseOpener, taskID string) (*wire.Response, error) {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTaskResponse+1))
	if err != nil {
		return nil, fmt.Errorf("reading task response: %w", httperr.Transport("node", err))
	}
	if len(data) > maxTaskResponse {
		return nil, errors.New("task response too large")
	}
	// Only successful answers are sealed (docs/cx.md D8); error bodies,
	// including HTML pages, go to the decoder as they are.
	if resp.StatusCode < 300 {
		var werr *wire.Error
		if data, werr = opener.Open(data); werr != nil {
			return &wire.Response{TaskID: taskID, Status: wire.StatusError, Error: werr, Code: werr.Code}, nil
		}
	}
	r, err := interop.DecodeTaskAnswer(resp.StatusCode, data, taskID)
	if err != nil {
		return nil, fmt.Errorf("node answered HTTP %d without an IICP body", resp.StatusCode)
	}
	return r, nil
}
