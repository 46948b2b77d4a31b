package openai

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

// generate serves one of the generation endpoints.
func (s *Server) generate(k kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes+1))
		if err != nil {
			writeError(w, wire.NewError(wire.CodePayloadTooLarge, "request body exceeds 8 MiB or could not be read"))
			return
		}
		req, werr := parseRequest(k, body)
		if werr != nil {
			writeError(w, werr)
			return
		}
		call := s.newCall(req)
		ctx, cancel := context.WithTimeout(r.Context(), s.set.taskTimeout+routeOverhead)
		defer cancel()
		start := time.Now()
		q := route.Query{AllowPlaintext: s.set.plaintext}
		var res *route.Result
		outcome := "ok"
		if req.stream {
			res, outcome = s.stream(ctx, w, req, call, q)
		} else {
			res, outcome = s.buffered(ctx, w, req, call, q)
		}
		// Never the prompt or the answer: only what routing did.
		attrs := []any{"endpoint", r.URL.Path, "stream", req.stream, "outcome", outcome,
			"ms", time.Since(start).Milliseconds()}
		if res != nil {
			attrs = append(attrs, "path", res.Path, "node_id", res.NodeID, "attempts", res.Attempts)
		}
		s.log.Info("openai request", attrs...)
	}
}

// newCall builds the CALL for a parsed request.
func (s *Server) newCall(req *request) *wire.Call {
	c := &wire.Call{TaskID: newTaskID(), Intent: intents[req.kind], Payload: req.payload, Model: req.model,
		Constraints: wire.Constraints{TimeoutMs: s.set.taskTimeout.Milliseconds(), MaxTokens: req.maxTokens}}
	if s.set.origin != "" {
		c.Trace = &wire.Trace{OriginNode: s.set.origin}
	}
	return c
}

// buffered answers with one JSON body.
func (s *Server) buffered(ctx context.Context, w http.ResponseWriter, req *request, call *wire.Call, q route.Query) (*route.Result, string) {
	res, err := s.router.Call(ctx, call, q)
	if err != nil {
		e := callError(res, err)
		writeError(w, e)
		return res, string(e.Code)
	}
	body, werr := completeBody(req.kind, call.TaskID, time.Now().Unix(), res.Response)
	if werr != nil {
		writeError(w, werr)
		return res, string(werr.Code)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return res, "ok"
}

// stream answers with server-sent events as the serving node generates.
// A client that goes away ends the request context: the router resets the
// task stream and the serving node cancels its backend request.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, req *request, call *wire.Call, q route.Query) (*route.Result, string) {
	_, prefix := objectFor(req.kind)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), kind: req.kind, id: prefix + call.TaskID,
		created: time.Now().Unix(), model: req.model, includeUsage: req.includeUsage}
	res, err := s.router.CallStream(ctx, call, q, sw.chunk)
	if err != nil {
		e := callError(res, err)
		sw.fail(e)
		return res, string(e.Code)
	}
	if res.Response.ModelUsed != "" && sw.model == "" {
		sw.model = res.Response.ModelUsed
	}
	if err := sw.finish(res.Response); err != nil {
		return res, "client_gone"
	}
	return res, "ok"
}

// modelObject is one entry of GET /v1/models. ServingNodes and Intents
// are meshnode additions clients ignore.
type modelObject struct {
	ID           string   `json:"id"`
	Object       string   `json:"object"`
	Created      int64    `json:"created"`
	OwnedBy      string   `json:"owned_by"`
	ServingNodes int      `json:"serving_nodes"`
	Intents      []string `json:"intents"`
}

func toModelObject(m route.Model) modelObject {
	return modelObject{ID: m.ID, Object: "model", OwnedBy: "meshnode", ServingNodes: m.Serving, Intents: m.Intents}
}

// listModels answers GET /v1/models: every model a known node offers,
// with how many nodes serve it.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	list := s.models(r.Context())
	out := struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{Object: "list", Data: make([]modelObject, 0, len(list))}
	for _, m := range list {
		out.Data = append(out.Data, toModelObject(m))
	}
	writeJSON(w, http.StatusOK, out)
}

// getModel answers GET /v1/models/{model}.
func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("model")
	for _, m := range s.models(r.Context()) {
		if m.ID == id {
			writeJSON(w, http.StatusOK, toModelObject(m))
			return
		}
	}
	writeError(w, wire.NewError(wire.CodeE033, "no known node serves this model").WithField("model"))
}
