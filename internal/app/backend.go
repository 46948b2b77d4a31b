package app

import (
	"context"
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
func buildBackend(ctx context.Context, cfg *config.Config, ua string, log *slog.Logger) (*builtBackend, error) {
	if cfg.Backend.URL != "" {
		return openAIBackend(ctx, cfg, cfg.Backend.URL, "", ua, log)
	}
	if base, models, ok := detectOllama(ctx, cfg.Backend.Detect); ok {
		if len(models) == 0 && len(cfg.Backend.Models) == 0 {
			log.Warn("Ollama answers on " + cfg.Backend.Detect + " but has no models; serving the echo backend (run `ollama pull <model>`)")
		} else {
			return openAIBackend(ctx, cfg, base, "ollama", ua, log, models...)
		}
	}
	echo := backend.NewEcho()
	r, err := backend.NewRouter(backend.DefaultRoutes(echo, backend.DefaultConfig{})...)
	if err != nil {
		return nil, fmt.Errorf("echo backend: %w", err)
	}
	return &builtBackend{router: r, be: echo, describe: "echo (built-in; set backend.url or start Ollama for a real model)"}, nil
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
func openAIBackend(ctx context.Context, cfg *config.Config, base, engine, ua string, log *slog.Logger, known ...string) (*builtBackend, error) {
	opts := []backend.Option{backend.WithUserAgent(ua)}
	if cfg.Backend.APIKeyEnv != "" {
		key := os.Getenv(cfg.Backend.APIKeyEnv)
		if key == "" {
			return nil, fmt.Errorf("backend.api_key_env names %s, which is empty", cfg.Backend.APIKeyEnv)
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
		mctx, cancel := context.WithTimeout(ctx, modelListTimeout)
		models, err = oa.Models(mctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("listing models of backend %s (set backend.models to skip): %w", base, err)
		}
		if len(models) == 0 {
			return nil, fmt.Errorf("backend %s lists no models; set backend.models", base)
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
