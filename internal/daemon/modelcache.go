package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"

	"github.com/meshnode/meshnode/internal/paths"
)

// modelCacheFile remembers the model list a backend (backend.url without
// backend.models) last gave, so a node that boots before its backend can
// start at once, unavailable, advertising those models, instead of waiting.
const modelCacheFile = "backend-models.json"

type modelCache struct {
	URL    string   `json:"url"`
	Models []string `json:"models"`
}

// maxCachedModels bounds what a cache file can make the node advertise.
const maxCachedModels = 256

// loadModelCache returns the cached models for base, nil when none.
func loadModelCache(stateDir, base string) []string {
	if stateDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(stateDir, modelCacheFile))
	if err != nil {
		return nil
	}
	var c modelCache
	if json.Unmarshal(b, &c) != nil || c.URL != base || len(c.Models) == 0 || len(c.Models) > maxCachedModels {
		return nil
	}
	return c.Models
}

// saveModelCache records base's models (best effort: a failure only costs
// the next cold start a wait).
func saveModelCache(stateDir, base string, models []string) error {
	if stateDir == "" {
		return nil
	}
	if slices.Equal(loadModelCache(stateDir, base), models) {
		return nil
	}
	b, err := json.Marshal(modelCache{URL: base, Models: models})
	if err != nil {
		return err
	}
	return paths.WriteFileAtomic(filepath.Join(stateDir, modelCacheFile), b, 0o600)
}
