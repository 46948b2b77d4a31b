package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/meshnode/meshnode/wire"
)

// Route serves one intent with one backend. Models lists the model names a
// CALL may pin; DefaultModel is used when it pins none (Models[0] if unset).
// MaxTokens caps output tokens per request and is advertised in the
// capability (node-capability-format.md §3: max_tokens MUST).
type Route struct {
	Intent       string
	Mode         Mode
	Backend      Backend
	Models       []string
	DefaultModel string
	MaxTokens    int64
}

// Router maps intents to backends and models. It is immutable after
// NewRouter and safe for concurrent use.
type Router struct {
	routes map[string]Route
	order  []string // intents, sorted
}

// NewRouter validates routes: one per intent, a known mode, a backend, and
// at least one model (the default must be among Models when both are set).
func NewRouter(routes ...Route) (*Router, error) {
	if len(routes) == 0 {
		return nil, errors.New("backend: router needs at least one route")
	}
	r := &Router{routes: make(map[string]Route, len(routes))}
	for i, rt := range routes {
		rt, err := normaliseRoute(rt)
		if err != nil {
			return nil, fmt.Errorf("backend: route %d: %w", i, err)
		}
		if _, dup := r.routes[rt.Intent]; dup {
			return nil, fmt.Errorf("backend: route %d: intent %s routed twice", i, rt.Intent)
		}
		r.routes[rt.Intent] = rt
		r.order = append(r.order, rt.Intent)
	}
	sort.Strings(r.order)
	return r, nil
}

// normaliseRoute checks one route and fills DefaultModel/Models.
func normaliseRoute(rt Route) (Route, error) {
	if !strings.HasPrefix(rt.Intent, "urn:") || strings.ContainsAny(rt.Intent, " \t\r\n") {
		return rt, fmt.Errorf("intent %q is not a URN", rt.Intent)
	}
	switch rt.Mode {
	case ModeChat, ModeCompletion, ModeEmbedding, ModeSummarise:
	default:
		return rt, fmt.Errorf("intent %s: unknown mode %q", rt.Intent, rt.Mode)
	}
	if rt.Backend == nil {
		return rt, fmt.Errorf("intent %s: no backend", rt.Intent)
	}
	if rt.MaxTokens < 0 {
		return rt, fmt.Errorf("intent %s: negative max_tokens", rt.Intent)
	}
	models := make([]string, 0, len(rt.Models))
	for _, m := range rt.Models {
		if m = strings.TrimSpace(m); m != "" && !slices.Contains(models, m) {
			models = append(models, m)
		}
	}
	switch {
	case rt.DefaultModel == "" && len(models) == 0:
		return rt, fmt.Errorf("intent %s: no model", rt.Intent)
	case rt.DefaultModel == "":
		rt.DefaultModel = models[0]
	case len(models) == 0:
		models = []string{rt.DefaultModel}
	case !slices.Contains(models, rt.DefaultModel):
		return rt, fmt.Errorf("intent %s: default model %q not among models", rt.Intent, rt.DefaultModel)
	}
	rt.Models = models
	return rt, nil
}

// Resolve picks the backend and a Request template (Intent, Model, Mode,
// MaxTokens; the caller sets Payload) for a CALL's intent and optional
// model. Errors wrap ErrUnknownIntent or ErrUnknownModel (IICP-E029).
func (r *Router) Resolve(intent, model string) (Backend, Request, error) {
	rt, ok := r.routes[intent]
	if !ok {
		return nil, Request{}, ErrUnknownIntent
	}
	if model == "" {
		model = rt.DefaultModel
	} else if !slices.Contains(rt.Models, model) {
		return nil, Request{}, ErrUnknownModel
	}
	return rt.Backend, Request{Intent: intent, Model: model, Mode: rt.Mode, MaxTokens: rt.MaxTokens}, nil
}

// Do resolves and runs one request: the whole backend side of a CALL.
func (r *Router) Do(ctx context.Context, intent, model string, payload json.RawMessage) (Result, error) {
	b, req, err := r.Resolve(intent, model)
	if err != nil {
		return Result{}, err
	}
	req.Payload = payload
	return b.Do(ctx, req)
}

// engineNamer is implemented by backends that know their inference engine.
type engineNamer interface{ InferenceEngine() string }

// outputStreamer is implemented by backends that deliver chunks to a Sink.
type outputStreamer interface{ StreamsOutput() bool }

// Capabilities lists one capability per route, sorted by intent, for
// REGISTER and gossip adverts (iicp-core.md §2.1).
func (r *Router) Capabilities() []wire.Capability {
	caps := make([]wire.Capability, 0, len(r.order))
	for _, intent := range r.order {
		rt := r.routes[intent]
		c := wire.Capability{Intent: intent, Models: slices.Clone(rt.Models), MaxTokens: rt.MaxTokens}
		if en, ok := rt.Backend.(engineNamer); ok {
			c.InferenceEngine = en.InferenceEngine()
		}
		// Every route answers the lifecycle profile (a backend that cannot
		// stream gives one terminal chunk); supports_streaming says tokens
		// arrive as they are generated.
		c.SupportedProfiles = slices.Clone(wire.SupportedProfiles)
		if st, ok := rt.Backend.(outputStreamer); ok && st.StreamsOutput() && Streams(rt.Mode) {
			c.SupportsStreaming = true
		}
		caps = append(caps, c)
	}
	return caps
}

// Models is the sorted union of all routes' models.
func (r *Router) Models() []string {
	var all []string
	for _, rt := range r.routes {
		for _, m := range rt.Models {
			if !slices.Contains(all, m) {
				all = append(all, m)
			}
		}
	}
	sort.Strings(all)
	return all
}

// Intents is the sorted list of served intents.
func (r *Router) Intents() []string { return slices.Clone(r.order) }

// Backends lists each distinct backend once (for the health Monitor), in
// intent order.
func (r *Router) Backends() []Backend {
	var out []Backend
	for _, intent := range r.order {
		b := r.routes[intent].Backend
		if !slices.ContainsFunc(out, func(x Backend) bool { return sameBackend(x, b) }) {
			out = append(out, b)
		}
	}
	return out
}

// sameBackend compares backends without panicking on a non-comparable
// dynamic type (a struct value holding a slice): those count as distinct.
func sameBackend(a, b Backend) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb || ta == nil || !ta.Comparable() {
		return false
	}
	return a == b
}

// BackendName is the backend label for node health ("echo", "openai",
// or "openai+echo" for a mixed router).
func (r *Router) BackendName() string {
	var names []string
	for _, b := range r.Backends() {
		if n := b.Name(); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return strings.Join(names, "+")
}

// DefaultConfig describes the default routes for one backend.
type DefaultConfig struct {
	// ChatModels serve chat, completion and summarise; the first is the default.
	ChatModels []string
	// EmbeddingModels serve embedding; none means no embedding route.
	EmbeddingModels []string
	// MaxTokens caps output tokens per request; 0 means DefaultMaxTokens,
	// since node-capability-format.md §3 makes max_tokens a MUST of an LLM
	// capability. Build Routes directly for an uncapped route.
	MaxTokens int64
}

// DefaultMaxTokens is the per-request output cap of DefaultRoutes: long
// enough for any chat answer, short enough that one CALL cannot hold a
// local GPU for minutes.
const DefaultMaxTokens = 4096

// DefaultRoutes builds the standard routes for b: chat, completion and
// summarise on the chat models, embedding when an embedding model is
// configured. For the echo backend with no models it uses EchoModel.
func DefaultRoutes(b Backend, cfg DefaultConfig) []Route {
	chat := cfg.ChatModels
	if len(chat) == 0 && IsEcho(b) {
		chat = []string{EchoModel}
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	var routes []Route
	if len(chat) > 0 {
		for _, ir := range []struct {
			intent string
			mode   Mode
		}{
			{wire.IntentChat, ModeChat},
			{wire.IntentCompletion, ModeCompletion},
			{wire.IntentSummarise, ModeSummarise},
		} {
			routes = append(routes, Route{Intent: ir.intent, Mode: ir.mode, Backend: b,
				Models: slices.Clone(chat), MaxTokens: cfg.MaxTokens})
		}
	}
	if len(cfg.EmbeddingModels) > 0 {
		routes = append(routes, Route{Intent: wire.IntentEmbedding, Mode: ModeEmbedding, Backend: b,
			Models: slices.Clone(cfg.EmbeddingModels)})
	}
	return routes
}

// embeddingHints are name fragments of common embedding-only models (Ollama
// library and Hugging Face naming); chat requests to them fail.
var embeddingHints = []string{"embed", "minilm", "bge-", "e5-", "gte-", "arctic-embed", "paraphrase-"}

// SplitEmbeddingModels separates embedding models from chat models by name,
// so autodetected Ollama models land on the right routes. Order is kept.
func SplitEmbeddingModels(models []string) (chat, embedding []string) {
	for _, m := range models {
		lower := strings.ToLower(m)
		if slices.ContainsFunc(embeddingHints, func(h string) bool { return strings.Contains(lower, h) }) {
			embedding = append(embedding, m)
		} else {
			chat = append(chat, m)
		}
	}
	return chat, embedding
}
