package httpx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLimiterEvictsInsteadOfRefusing is the review's lockout: a spray of
// distinct sources fills the key table; a new source must still be
// admitted (the least recently used key is evicted), and a source over its
// own budget stays refused.
func TestLimiterEvictsInsteadOfRefusing(t *testing.T) {
	l := NewLimiter(2, time.Minute, 1000)
	now := time.Unix(1_700_000_000, 0)
	for range 2 {
		if ok, _ := l.Allow("hot", now); !ok {
			t.Fatal("first two events of hot refused")
		}
	}
	for i := range 100_000 {
		l.Allow(fmt.Sprintf("junk-%d", i), now)
	}
	if l.Len() > 1000 {
		t.Fatalf("limiter holds %d keys, bound is 1000", l.Len())
	}
	if ok, _ := l.Allow("legit-newcomer", now); !ok {
		t.Fatal("a new source was refused because the key table was full")
	}
	ok, wait := l.Allow("legit-newcomer", now)
	ok2, _ := l.Allow("legit-newcomer", now)
	if !ok || ok2 || wait != 0 {
		t.Fatalf("budget of 2 not enforced: %v %v", ok, ok2)
	}
	if _, w := l.Allow("legit-newcomer", now.Add(10*time.Second)); w != 50*time.Second {
		t.Fatalf("wait = %v, want 50s (until the oldest event leaves the window)", w)
	}
	if ok, _ := l.Allow("legit-newcomer", now.Add(time.Minute+time.Second)); !ok {
		t.Fatal("budget not restored after the window")
	}
	if blocked, _ := l.Blocked("never-seen", now); blocked {
		t.Fatal("Blocked reports an unknown key as blocked")
	}
	l.Sweep(now.Add(time.Hour))
	if l.Len() != 0 {
		t.Fatalf("sweep left %d idle keys", l.Len())
	}
	if NewLimiter(0, time.Minute, 0) != nil {
		t.Fatal("limit 0 must disable")
	}
	var disabled *Limiter
	if ok, _ := disabled.Allow("x", now); !ok {
		t.Fatal("nil limiter refused")
	}
}

func TestSourceKeyGroupsIPv6By64(t *testing.T) {
	cases := map[string]string{
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff::9":  "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:1":        "2001:db8:1:3::/64",
		"203.0.113.7:5555":           "203.0.113.7",
		"[::ffff:203.0.113.7]:5555":  "203.0.113.7",
		"[::1]:80":                   "::1",
		"garbage":                    "unknown",
		"[fe80::1%eth0]:80":          "fe80::/64",
	}
	for in, want := range cases {
		if got := SourceKey(in); got != want {
			t.Errorf("SourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCheckAddrTransitionPrefixes: NAT64, 6to4, Teredo and IPv4-compatible
// addresses that embed a loopback or private IPv4 address are refused;
// ones embedding a public address are not.
func TestCheckAddrTransitionPrefixes(t *testing.T) {
	refused := []string{
		"64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::c0a8:101", "64:ff9b::a9fe:a9fe", // NAT64 127.0.0.1, 10.0.0.1, 192.168.1.1, 169.254.169.254
		"2002:7f00:1::1", "2002:a00:1::", "2002:c0a8:101::5", // 6to4 127.0.0.1, 10.0.0.1, 192.168.1.1
		"2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1 (inverted 80ff:fffe)
		"2001:0:7f00:1:8000:63bf:3fff:fdd2",    // Teredo, server 127.0.0.1
		"2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo, client 10.0.0.1
		"::7f00:1", "64:ff9b:1::1", "fec0::1",
		"127.0.0.1", "10.1.2.3", "::1", "fd00::1", "169.254.169.254", "100.64.0.1", "::ffff:127.0.0.1",
	}
	for _, s := range refused {
		if err := CheckAddr(netip.MustParseAddr(s)); err == nil {
			t.Errorf("CheckAddr(%s) accepted a transition/private address", s)
		}
		if err := CheckHost("[" + s + "]"); err == nil {
			t.Errorf("CheckHost([%s]) accepted", s)
		}
	}
	allowed := []string{"64:ff9b::cb00:7107", "2002:cb00:7107::1", "2001:0:4136:e378:8000:63bf:34ff:8ef8", "203.0.113.7", "2606:4700::1111"}
	for _, s := range allowed {
		if err := CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("CheckAddr(%s) = %v, want accepted (public embedded address)", s, err)
		}
	}
}

// TestGuardedClientNeverDialsLoopback: the guarded client refuses a
// loopback URL and the local server never sees a connection.
func TestGuardedClientNeverDialsLoopback(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	var conns atomic.Int64
	srv.Config.ConnState = func(net.Conn, http.ConnState) { conns.Add(1) }
	c := GuardedClient(2*time.Second, nil)
	resp, err := c.Get(srv.URL + "/internal/daemon/admin/did.json")
	if err == nil {
		resp.Body.Close()
		t.Fatal("guarded client fetched a loopback URL")
	}
	if !strings.Contains(err.Error(), ErrNonRoutable.Error()) {
		t.Fatalf("error %v does not name the refusal", err)
	}
	if hits.Load() != 0 || conns.Load() != 0 {
		t.Fatalf("loopback server saw %d requests / %d connections", hits.Load(), conns.Load())
	}
}

func TestConnCapPerSource(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewConnCap(raw, 3, nil)
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	var server []net.Conn
	for range 3 {
		server = append(server, <-accepted)
	}
	testutil.WaitFor(t, 5*time.Second, "two refused connections", func() bool { return ln.Stats().Refused.Load() == 2 })
	if n := ln.Open("127.0.0.1"); n != 3 {
		t.Fatalf("open = %d, want 3", n)
	}
	server[0].Close()
	server[0].Close() // a second Close must not release twice
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	clients = append(clients, c)
	server = append(server, <-accepted)
	for _, c := range append(clients, server...) {
		c.Close()
	}
	ln.Close()
	for range accepted {
	}
	if ln.Stats().Accepted.Load() != 4 {
		t.Fatalf("accepted = %d, want 4", ln.Stats().Accepted.Load())
	}
}

func TestWriteErrorEnvelopeAndRetryAfter(t *testing.T) {
	rec := httptest.NewRecorder()
	RateLimited(rec, "slow down", 1500*time.Millisecond)
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "2" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("429: code %d headers %v", rec.Code, rec.Header())
	}
	var env struct {
		Error struct {
			Code       string `json:"code"`
			RetryAfter int64  `json:"retry_after"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Error.Code != string(wire.CodeRateLimited) || env.Error.RetryAfter != 2 {
		t.Fatalf("body %s", rec.Body)
	}
	rec = httptest.NewRecorder()
	WriteErrorAs(rec, wire.NewError(wire.CodeNotFound, "no"), true)
	if rec.Header().Get("Content-Type") != MediaCBOR || rec.Code != 404 || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("cbor error: %d %v", rec.Code, rec.Header())
	}
}

func TestRecovererHidesPanic(t *testing.T) {
	testutil.CheckRecovererHidesPanic(t, func(l *slog.Logger) http.Handler {
		return Recoverer(l, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("canary-7f3a") }))
	}, http.MethodGet, "/x", "canary-7f3a", string(wire.CodeInternal))
}

func TestLogLimiterBoundsLines(t *testing.T) {
	l := NewLogLimiter(3, time.Minute)
	now := time.Unix(0, 0)
	n := 0
	for range 1000 {
		if ok, _ := l.Allow(now); ok {
			n++
		}
	}
	ok, suppressed := l.Allow(now.Add(time.Minute))
	if n != 3 || !ok || suppressed != 997 {
		t.Fatalf("allowed %d, then ok=%v suppressed=%d", n, ok, suppressed)
	}
	var buf bytes.Buffer
	stats := &ListenerStats{}
	lg := ServerErrorLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), stats)
	for range 50 {
		lg.Print("http: TLS handshake error from 1.2.3.4:5: EOF")
	}
	if stats.TLSHandshakeErrors.Load() != 50 || strings.Count(buf.String(), "\n") > 10 {
		t.Fatalf("counted %d, logged %d lines", stats.TLSHandshakeErrors.Load(), strings.Count(buf.String(), "\n"))
	}
}

// TestIsLoopbackHost: the one loopback rule for listen addresses and Host
// headers.
func TestIsLoopbackHost(t *testing.T) {
	for in, want := range map[string]bool{
		"localhost": true, "LOCALHOST:8090": true, "127.0.0.1": true, "127.0.0.2:1": true, "[::1]:8091": true, "::1": true,
		"": false, "0.0.0.0": false, "192.0.2.1:80": false, "evil.example": false, "localhost.evil.example:80": false, "[::]:1": false,
	} {
		if got := IsLoopbackHost(in); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", in, got, want)
		}
	}
	for in, want := range map[string]bool{"127.0.0.1:0": true, "localhost:1": true, ":8090": false, "127.0.0.1": false, "0.0.0.0:1": false} {
		if got := IsLoopbackAddr(in); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v, want %v", in, got, want)
		}
	}
}
