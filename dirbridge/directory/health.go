package directory

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// storeCheckEvery bounds how often a health or readiness request writes
// to the database: probes are unauthenticated, so each must not cost a
// synchronous commit.
const storeCheckEvery = 5 * time.Second

// storeCheck caches the outcome of the last store write probe.
type storeCheck struct {
	mu  sync.Mutex
	at  time.Time
	err error
}

// storeHealthy writes one row in its own transaction (at most once per
// storeCheckEvery) and reports whether the store accepts writes. A full
// disk, a read-only or vanished file and a closed database all fail here,
// as every REGISTER would.
func (s *Server) storeHealthy(ctx context.Context) error {
	s.storeCheck.mu.Lock()
	defer s.storeCheck.mu.Unlock()
	now := s.now()
	if age := now.Sub(s.storeCheck.at); !s.storeCheck.at.IsZero() && age >= 0 && age < storeCheckEvery {
		return s.storeCheck.err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := s.store.db.ExecContext(ctx, `INSERT INTO meta (k, v) VALUES ('health_probe', ?)
		ON CONFLICT(k) DO UPDATE SET v = excluded.v`, now.UnixMilli())
	if err != nil && s.storeCheck.err == nil {
		s.log.Error("store write check failed: the directory cannot record registrations", "error", err)
	}
	s.storeCheck.at, s.storeCheck.err = now, err
	return err
}

// handleHealth is the directory's own GET /iicp/health: 200 "ok" while the
// store takes writes, 503 "unavailable" with store "failing" otherwise.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	status, store, code := "ok", "ok", http.StatusOK
	if s.storeHealthy(r.Context()) != nil {
		status, store, code = "unavailable", "failing", http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "30")
	}
	httpx.WriteJSON(w, code, map[string]any{
		"status": status, "role": "directory", "version": s.cfg.Version, "store": store,
		"registered_nodes": s.store.idx.count(), "active_nodes": s.activeCount(),
	})
}

// handleReady is GET /readyz: 200 while the store takes writes, else the
// 503 unavailable envelope.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.storeHealthy(r.Context()) != nil {
		e := wire.NewError(wire.CodeUnavailable, "the directory store does not accept writes (disk full or database unavailable); see the directory log")
		e.RetryAfter = 30
		httpx.WriteError(w, e)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"ready": true, "store": "ok"})
}
