package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Logs hands out per-subsystem loggers sharing one output.
type Logs struct {
	out    slog.Handler
	flood  *floodGuard
	def    slog.Level
	levels map[string]slog.Level
}

// ParseLevel reads debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// New builds the loggers. format is "text" or "json"; levels maps a
// subsystem name to its level.
func New(w io.Writer, format, level string, levels map[string]string) (*Logs, error) {
	def, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	l := &Logs{def: def, levels: map[string]slog.Level{}, flood: newFloodGuard()}
	min := def
	for sub, s := range levels {
		lv, err := ParseLevel(s)
		if err != nil {
			return nil, fmt.Errorf("[log.levels] %s: %w", sub, err)
		}
		l.levels[sub] = lv
		if lv < min {
			min = lv
		}
	}
	// The shared output lets through the lowest level any subsystem wants;
	// each subsystem's filter below decides for its own records.
	opts := &slog.HandlerOptions{Level: min}
	switch format {
	case "json":
		l.out = slog.NewJSONHandler(w, opts)
	case "text", "":
		l.out = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	return l, nil
}

// For returns the logger for subsystem without adding attributes.
func (l *Logs) For(subsystem string) *slog.Logger {
	lv, ok := l.levels[subsystem]
	if !ok {
		lv = l.def
	}
	return slog.New(&levelHandler{min: lv, next: l.out, flood: l.flood})
}

// Named returns the logger for subsystem with subsystem=<name> attached.
func (l *Logs) Named(subsystem string) *slog.Logger {
	return l.For(subsystem).With("subsystem", subsystem)
}

// levelHandler filters records below min, then applies the flood guard
// (flood.go), before the shared handler.
type levelHandler struct {
	min   slog.Level
	next  slog.Handler
	flood *floodGuard
}

func (h *levelHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= h.min && h.next.Enabled(ctx, lv)
}

func (h *levelHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.flood.handle(ctx, h.next, r)
}

func (h *levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &levelHandler{min: h.min, next: h.next.WithAttrs(as), flood: h.flood}
}

func (h *levelHandler) WithGroup(name string) slog.Handler {
	return &levelHandler{min: h.min, next: h.next.WithGroup(name), flood: h.flood}
}
