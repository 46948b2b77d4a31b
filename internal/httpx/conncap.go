package httpx

import (
	"bytes"
	"errors"
	"log"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultConnsPerIP is the per-source connection cap of the HTTP
// listeners: far above what one honest client (or NAT) keeps open, far
// below what starves everyone else of file descriptors.
const DefaultConnsPerIP = 256

// ListenerStats are the listener counters a server exports as metrics.
type ListenerStats struct {
	Accepted           atomic.Uint64 // connections handed to the server
	Refused            atomic.Uint64 // closed at once: the source was at its cap
	AcceptErrors       atomic.Uint64 // Accept returned an error
	TLSHandshakeErrors atomic.Uint64 // counted from the server's error log
}

// ConnCap wraps a listener and closes, at accept, any connection whose
// source (IPv4 address, IPv6 /64) already holds perIP open connections.
// One client holding thousands of connections then cannot starve others
// (health probes included).
type ConnCap struct {
	net.Listener
	perIP int
	stats *ListenerStats

	mu   sync.Mutex
	open map[string]int
}

// NewConnCap wraps ln; perIP <= 0 means DefaultConnsPerIP. stats may be
// nil.
func NewConnCap(ln net.Listener, perIP int, stats *ListenerStats) *ConnCap {
	if perIP <= 0 {
		perIP = DefaultConnsPerIP
	}
	if stats == nil {
		stats = &ListenerStats{}
	}
	return &ConnCap{Listener: ln, perIP: perIP, stats: stats, open: make(map[string]int)}
}

// Stats returns the listener's counters.
func (c *ConnCap) Stats() *ListenerStats { return c.stats }

// Accept returns the next connection whose source is under its cap.
func (c *ConnCap) Accept() (net.Conn, error) {
	for {
		conn, err := c.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.stats.AcceptErrors.Add(1)
			}
			return nil, err
		}
		key := SourceKey(conn.RemoteAddr().String())
		c.mu.Lock()
		if c.open[key] >= c.perIP {
			c.mu.Unlock()
			c.stats.Refused.Add(1)
			_ = conn.Close()
			continue
		}
		c.open[key]++
		c.mu.Unlock()
		c.stats.Accepted.Add(1)
		return &cappedConn{Conn: conn, release: func() { c.release(key) }}, nil
	}
}

func (c *ConnCap) release(key string) {
	c.mu.Lock()
	if c.open[key]--; c.open[key] <= 0 {
		delete(c.open, key)
	}
	c.mu.Unlock()
}

// Open is the number of connections key currently holds.
func (c *ConnCap) Open(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open[key]
}

type cappedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *cappedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// ServerErrorLog is the *log.Logger for http.Server.ErrorLog: it counts
// TLS handshake errors into stats and writes at most a few lines per
// minute at debug level (a scanner can make net/http log one line per
// connection).
func ServerErrorLog(logger *slog.Logger, stats *ListenerStats) *log.Logger {
	return log.New(&errorLogWriter{log: logger, stats: stats, lim: NewLogLimiter(10, time.Minute)}, "", 0)
}

type errorLogWriter struct {
	log   *slog.Logger
	stats *ListenerStats
	lim   *LogLimiter
}

func (e *errorLogWriter) Write(p []byte) (int, error) {
	if e.stats != nil && bytes.Contains(p, []byte("TLS handshake error")) {
		e.stats.TLSHandshakeErrors.Add(1)
	}
	if ok, dropped := e.lim.Allow(time.Now()); ok {
		e.log.Debug("http server", "message", string(bytes.TrimSpace(p)), "suppressed", dropped)
	}
	return len(p), nil
}
