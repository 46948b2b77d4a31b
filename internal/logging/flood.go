package logging

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Flood guard: a remote party can make some records at will (a refused
// stream or task, a bad token, a failed handshake). Below ERROR, each
// message text gets at most floodLines records per floodWindow across all
// subsystems; the rest are dropped and counted, and the next record let
// through carries suppressed=<count>. Errors always pass.
const (
	floodLines   = 60
	floodWindow  = time.Minute
	floodMaxMsgs = 1024 // distinct messages tracked; the table restarts when full
)

type floodGuard struct {
	mu   sync.Mutex
	msgs map[string]*floodCount
}

type floodCount struct {
	start      time.Time
	used       int
	suppressed int
}

func newFloodGuard() *floodGuard { return &floodGuard{msgs: make(map[string]*floodCount)} }

// allow reports whether a record with msg at t may be written and how many
// were dropped before it.
func (g *floodGuard) allow(msg string, t time.Time) (bool, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.msgs[msg]
	if c == nil {
		if len(g.msgs) >= floodMaxMsgs {
			clear(g.msgs)
		}
		c = &floodCount{start: t}
		g.msgs[msg] = c
	}
	if t.Sub(c.start) >= floodWindow {
		c.start, c.used = t, 0
	}
	if c.used >= floodLines {
		c.suppressed++
		return false, 0
	}
	c.used++
	n := c.suppressed
	c.suppressed = 0
	return true, n
}

// handle applies the guard before next.
func (g *floodGuard) handle(ctx context.Context, next slog.Handler, r slog.Record) error {
	if r.Level >= slog.LevelError {
		return next.Handle(ctx, r)
	}
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	ok, suppressed := g.allow(r.Message, t)
	if !ok {
		return nil
	}
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return next.Handle(ctx, r)
}
