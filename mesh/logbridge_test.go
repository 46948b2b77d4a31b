package mesh

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"

	"github.com/meshnode/meshnode/internal/testutil"
)

// Both of libp2p's logging stacks (gologshim's slog loggers and go-log/v2's
// zap loggers, used by the DHT and pubsub) write through the handler
// RouteLibp2pLogs installs, at its level, in its format.
func TestRouteLibp2pLogs(t *testing.T) {
	var buf testutil.SyncBuffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}).
		WithAttrs([]slog.Attr{slog.String("subsystem", "libp2p")})
	RouteLibp2pLogs(h, slog.LevelInfo)

	golog.Logger("meshnode-test-zap").Infow("zap line", "peers", 3)
	golog.Logger("meshnode-test-zap").Debug("zap debug dropped")
	gologshim.Logger("meshnode-test-slog").Warn("slog line", "n", 1)
	gologshim.Logger("meshnode-test-slog").Debug("slog debug dropped")

	got := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		got[rec["msg"].(string)] = rec
	}
	zl, sl := got["zap line"], got["slog line"]
	if zl == nil || zl["logger"] != "meshnode-test-zap" || zl["subsystem"] != "libp2p" || zl["level"] != "INFO" || zl["peers"] != float64(3) {
		t.Errorf("zap line: %v", zl)
	}
	if sl == nil || sl["logger"] != "meshnode-test-slog" || sl["subsystem"] != "libp2p" || sl["level"] != "WARN" {
		t.Errorf("slog line: %v", sl)
	}
	if got["zap debug dropped"] != nil || got["slog debug dropped"] != nil {
		t.Errorf("debug lines passed an info handler: %v", got)
	}
}

// TestShutdownNoiseDemoted: libp2p's "listener closed" accept error (a host
// closing its own listeners) is not an error line; other errors stay.
func TestShutdownNoiseDemoted(t *testing.T) {
	var buf bytes.Buffer
	h := shutdownNoise{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})}
	l := slog.New(h)
	l.Error("swarm listener accept error", "err", "listener closed")
	if buf.Len() != 0 {
		t.Fatalf("listener-closed error still logged: %s", buf.String())
	}
	l.Warn("failed when refreshing routing tablefailed to query for self, err=failed to find any peer in table")
	if buf.Len() != 0 {
		t.Fatalf("empty-routing-table refresh warning still logged: %s", buf.String())
	}
	l.Error("swarm listener accept error", "err", "too many open files")
	if !strings.Contains(buf.String(), "too many open files") {
		t.Fatalf("a real accept error was dropped: %q", buf.String())
	}
}
