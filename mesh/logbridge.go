package mesh

import (
	"context"
	"log/slog"
	"strings"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap/zapcore"
)

// RouteLibp2pLogs sends libp2p's own log lines to h, so they share the
// process's format (log.format) and carry its subsystem attribute. Two
// logging stacks live under libp2p: go-libp2p's slog loggers (gologshim,
// each line labelled logger=<libp2p system>) and go-log/v2's zap loggers
// (the DHT, pubsub). level is the lowest level let through. It is process
// wide and must run before the first libp2p logger writes (gologshim binds
// its handler on first use): cmd/meshnode calls it once at start.
func RouteLibp2pLogs(h slog.Handler, level slog.Level) {
	h = shutdownNoise{h}
	gologshim.SetDefaultHandler(h)
	golog.SetPrimaryCore(&slogCore{h: h})
	// "*" also sets the level of go-log loggers created later.
	_ = golog.SetLogLevel("*", zapLevel(level).String())
}

// slogCore is a zapcore.Core writing to a slog.Handler.
type slogCore struct {
	h     slog.Handler
	attrs []slog.Attr
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h, attrs: append(append([]slog.Attr(nil), c.attrs...), fieldAttrs(fs)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(c.attrs...)
	r.AddAttrs(fieldAttrs(fs)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

// fieldAttrs renders zap fields through zap's own map encoder.
func fieldAttrs(fs []zapcore.Field) []slog.Attr {
	if len(fs) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fs {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, slog.Any(k, v))
	}
	return out
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l <= slog.LevelDebug:
		return zapcore.DebugLevel
	case l < slog.LevelWarn:
		return zapcore.InfoLevel
	case l < slog.LevelError:
		return zapcore.WarnLevel
	default:
		return zapcore.ErrorLevel
	}
}

// shutdownNoise demotes to debug what libp2p reports as a problem but is
// the normal life of a home node: the swarm's "listener closed" error when
// a host closes its own listeners (a normal stop, or a start that failed on
// another port), and the DHT's warning that a refresh found no peer in its
// routing table (a node that has not met anyone yet).
type shutdownNoise struct{ slog.Handler }

func (h shutdownNoise) Handle(ctx context.Context, r slog.Record) error {
	if (r.Level >= slog.LevelError && closedListener(r)) ||
		(r.Level >= slog.LevelWarn && strings.Contains(r.Message, "failed to find any peer in table")) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		d := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool { d.AddAttrs(a); return true })
		return h.Handler.Handle(ctx, d)
	}
	return h.Handler.Handle(ctx, r)
}

func (h shutdownNoise) WithAttrs(as []slog.Attr) slog.Handler {
	return shutdownNoise{h.Handler.WithAttrs(as)}
}

func (h shutdownNoise) WithGroup(name string) slog.Handler {
	return shutdownNoise{h.Handler.WithGroup(name)}
}

// closedListener reports a record whose error says the listener closed.
func closedListener(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "error" {
			found = strings.Contains(a.Value.String(), "listener closed")
		}
		return !found
	})
	return found
}
