package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/meshnode/meshnode/internal/config"
	"github.com/meshnode/meshnode/node/backend"
)

// modelListTimeout bounds asking a configured backend for its models at
// start; a slow backend must not hold up `meshnode up`.
const modelListTimeout = 5 * time.Second

// builtBackend is the backend choice and how to describe it.
type builtBackend struct {
	router *backend.Router
	// describe is a one-line human description for the first-run block.
	describe string
	be       backend.Backend
}

// buildBackend picks the backend: the configured OpenAI-compatible URL,
// else a local Ollama when one answers, else the built-in echo backend, so
// a fresh machine always has something that serves.
func buildBackend(ctx context.Context, cfg *config.Config, stateDir, ua string, log *slog.Logger) (*builtBackend, error) {
	if cfg.Backend.URL != "" {
		return openAIBackend(ctx, cfg, cfg.Backend.URL, "", ua, log, stateDir)
	}
	if base, models, ok := detectOllama(ctx, cfg.Backend.Detect); ok {
		if len(models) == 0 && len(cfg.Backend.Models) == 0 {
			log.Warn("Ollama answers on " + cfg.Backend.Detect + " but has no models; serving the echo backend (run `ollama pull <model>`)")
		} else {
			if len(models) > 0 {
				if err := saveModelCache(stateDir, base, models); err != nil {
					log.Warn("caching Ollama's model list", "error", err)
				}
			}
			return openAIBackend(ctx, cfg, base, "ollama", ua, log, "", models...)
		}
	} else if base := "http://" + backend.DefaultOllamaAddr + "/v1"; loadModelCache(stateDir, base) != nil {
		// The node booted before Ollama: serve what it had last time,
		// unavailable until it answers, instead of falling back to echo.
		log.Warn("Ollama does not answer on "+backend.DefaultOllamaAddr+"; serving the models it had last time once it answers (delete "+
			modelCacheFile+" in the state directory to use the echo backend instead)", "models", len(loadModelCache(stateDir, base)))
		return openAIBackend(ctx, cfg, base, "ollama", ua, log, "", loadModelCache(stateDir, base)...)
	}
	return echoBackend(cfg.Node.Dev)
}

// EchoIntent is the only intent the echo backend serves outside dev mode:
// a node without a model must never answer llm:* tasks a caller meant for
// a real model (docs/spec-decisions.md, "echo backend").
const EchoIntent = "urn:iicp:intent:x.meshnode:echo:v1"

// echoBackend serves the built-in echo backend: under the llm:* intents in
// dev mode (demos and tests), else only under EchoIntent.
func echoBackend(dev bool) (*builtBackend, error) {
	echo := backend.NewEcho()
	routes := backend.DefaultRoutes(echo, backend.DefaultConfig{})
	desc := "echo (built-in, dev mode; set backend.url or start Ollama for a real model)"
	if !dev {
		routes = []backend.Route{{Intent: EchoIntent, Mode: backend.ModeChat, Backend: echo, Models: []string{backend.EchoModel}}}
		desc = "echo (built-in) under " + EchoIntent + " only, no llm:* intents; set backend.url or start Ollama for a real model"
	}
	r, err := backend.NewRouter(routes...)
	if err != nil {
		return nil, fmt.Errorf("echo backend: %w", err)
	}
	return &builtBackend{router: r, be: echo, describe: desc}, nil
}

// modelRetry is how often start-up asks a silent backend for its models
// again; modelWaitLog how often it says it still waits.
const (
	modelRetry   = 2 * time.Second
	modelWaitLog = 30 * time.Second
)

// waitForModels asks the backend for its models until it answers or ctx
// ends. A backend that is down at start is not fatal: with backend.models
// set, or a model list cached from an earlier start, the node starts at
// once (unavailable until the backend answers); otherwise it cannot know
// what to advertise, so it waits here, saying so, instead of exiting.
func waitForModels(ctx context.Context, oa *backend.OpenAI, base string, log *slog.Logger, stateDir string) ([]string, error) {
	var said time.Time
	for first := true; ; first = false {
		mctx, cancel := context.WithTimeout(ctx, modelListTimeout)
		models, err := oa.Models(mctx)
		cancel()
		switch {
		case err == nil && len(models) > 0:
			if !said.IsZero() {
				log.Info("backend answers: models listed", "backend", base, "models", len(models))
			}
			if err := saveModelCache(stateDir, base, models); err != nil {
				log.Warn("caching the backend's model list", "error", err)
			}
			return models, nil
		case err == nil:
			err = errors.New("it lists no models")
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if cached := loadModelCache(stateDir, base); first && cached != nil {
			log.Warn("backend does not answer; starting with the models it listed last time (cached in "+modelCacheFile+")",
				"backend", base, "models", len(cached), "error", err)
			return cached, nil
		}
		if time.Since(said) >= modelWaitLog {
			log.Warn("waiting for the backend to list its models (set backend.models to start without waiting)",
				"backend", base, "error", err)
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(modelRetry):
		}
	}
}

// detectOllama probes addr unless autodetection is off (backend.detect).
func detectOllama(ctx context.Context, addr string) (string, []string, bool) {
	if addr == config.DetectOff || addr == "" {
		return "", nil, false
	}
	return backend.DetectOllama(ctx, addr)
}

// openAIBackend builds routes for an OpenAI-compatible server. Models come
// from the config, else from known (Ollama tags), else from GET /v1/models.
// stateDir, when set, caches the listed models (see modelCacheFile).
func openAIBackend(ctx context.Context, cfg *config.Config, base, engine, ua string, log *slog.Logger, stateDir string, known ...string) (*builtBackend, error) {
	opts := []backend.Option{backend.WithUserAgent(ua)}
	if cfg.Backend.APIKeyEnv != "" {
		key := os.Getenv(cfg.Backend.APIKeyEnv)
		if key == "" {
			return nil, configErrorf("backend.api_key_env names $%s, which is unset or empty; export it (systemd: /etc/meshnode/env) or clear backend.api_key_env",
				cfg.Backend.APIKeyEnv)
		}
		opts = append(opts, backend.WithAPIKey(key))
	}
	if engine != "" {
		opts = append(opts, backend.WithInferenceEngine(engine))
	}
	oa, err := backend.NewOpenAI(base, opts...)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", base, err)
	}
	models := slices.Clone(cfg.Backend.Models)
	if len(models) == 0 {
		models = known
	}
	if len(models) == 0 {
		if models, err = waitForModels(ctx, oa, base, log, stateDir); err != nil {
			return nil, err
		}
	}
	chat, emb := backend.SplitEmbeddingModels(models)
	r, err := backend.NewRouter(backend.DefaultRoutes(oa, backend.DefaultConfig{ChatModels: chat, EmbeddingModels: emb})...)
	if err != nil {
		return nil, fmt.Errorf("backend routes: %w", err)
	}
	desc := fmt.Sprintf("%s at %s, models %v", oa.Name(), base, models)
	if engine != "" {
		desc = fmt.Sprintf("%s at %s, models %v", engine, base, models)
	}
	log.Debug("backend selected", "backend", oa, "models", len(models))
	return &builtBackend{router: r, be: oa, describe: desc}, nil
}
