package httpapi

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// newLimiter(60/min, burst 2) allows 2 requests in any 2 s: the node's
// rate and burst as an httpx rolling window, memory bounded by maxKeys.
func TestLimiterBoundedAndRefills(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(60, 2, 4)
	for i := range 2 {
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, wait := l.Allow("a", now)
	if ok || wait != 2*time.Second {
		t.Fatalf("over burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allow("a", now.Add(2*time.Second)); !ok {
		t.Fatal("no refill after the window")
	}
	for i := range 1000 {
		l.Allow(fmt.Sprint("k", i), now)
	}
	if n := l.Len(); n > 4 {
		t.Fatalf("%d keys held, want ≤ 4", n)
	}
	if newLimiter(0, 0, 1) != nil {
		t.Fatal("rate 0 must disable the limiter")
	}
}

func TestIPKey(t *testing.T) {
	cases := []struct {
		in       string
		key      string
		loopback bool
	}{
		{"203.0.113.9:443", "203.0.113.9", false},
		{"127.0.0.1:1", "127.0.0.1", true},
		{"[::1]:1", "::1", true},
		{"[::ffff:127.0.0.1]:1", "127.0.0.1", true},
		{"[2001:db8:1:2:3:4:5:6]:9", "2001:db8:1:2::/64", false},
		{"garbage", "unknown", false},
	}
	for _, tc := range cases {
		k, lb := ipKey(tc.in)
		if k != tc.key || lb != tc.loopback {
			t.Errorf("ipKey(%q) = %q,%v want %q,%v", tc.in, k, lb, tc.key, tc.loopback)
		}
	}
}

func TestParseTraceparent(t *testing.T) {
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	cases := []struct {
		in string
		ok bool
	}{
		{"00-" + tid + "-00f067aa0ba902b7-01", true},
		{"01-" + tid + "-00f067aa0ba902b7-01-extra", true},  // future version may extend
		{"00-" + tid + "-00f067aa0ba902b7-01-extra", false}, // version 00 has exactly 4 fields
		{"ff-" + tid + "-00f067aa0ba902b7-01", false},       // forbidden version
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-" + tid + "-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false}, // uppercase
		{"00-" + tid[:30] + "-00f067aa0ba902b7-01", false},
		{"", false},
	}
	for _, tc := range cases {
		id, ok := parseTraceparent(tc.in)
		if ok != tc.ok || (ok && id != tid) {
			t.Errorf("parseTraceparent(%q) = %q,%v want ok=%v", tc.in, id, ok, tc.ok)
		}
	}
}

func TestAcceptsCBOR(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                      true,
		"application/iicp+cbor": true,
		"application/iicp+cbor, application/json;q=0.9": true,
		"*/*":              true,
		"application/*":    true,
		"application/json": false,
		"application/iicp+cbor;q=0, application/json": false,
	} {
		if got := acceptsCBOR(accept); got != want {
			t.Errorf("acceptsCBOR(%q) = %v", accept, got)
		}
	}
}

func TestBearer(t *testing.T) {
	for h, want := range map[string]string{
		"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "Bearer ": "", "": "",
	} {
		if got, _ := bearer(h); got != want {
			t.Errorf("bearer(%q) = %q want %q", h, got, want)
		}
	}
}

// TestIPKeyMatchesSourceKey: ipKey's one-parse path gives the key and the
// loopback answer of httpx.SourceKey followed by netip.ParseAddr.
func TestIPKeyMatchesSourceKey(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:5000", "10.1.2.3:80", "[::1]:9", "[2001:db8:1:2:3::4]:443",
		"[::ffff:127.0.0.1]:1", "[::ffff:10.0.0.1]:1", "[fe80::1%eth0]:22", "[::1%lo]:1", "192.0.2.1", "::1",
		"host:80", "", "garbage", "[::1]"} {
		wantKey := httpx.SourceKey(addr)
		a, err := netip.ParseAddr(wantKey)
		wantLoop := err == nil && a.IsLoopback()
		if key, loop := ipKey(addr); key != wantKey || loop != wantLoop {
			t.Errorf("%q: got %q/%v, want %q/%v", addr, key, loop, wantKey, wantLoop)
		}
	}
}

// splitTraceparent is parseTraceparent's former strings.Split form, the
// reference for FuzzParseTraceparent.
func splitTraceparent(v string) (string, bool) {
	parts := strings.Split(v, "-")
	if len(parts) < 4 || len(parts[0]) != 2 || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return "", false
	}
	if parts[0] == "ff" || (parts[0] == "00" && len(parts) != 4) {
		return "", false
	}
	for _, p := range parts[:4] {
		if !lowerHex(p) {
			return "", false
		}
	}
	if strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		return "", false
	}
	return parts[1], true
}

// FuzzParseTraceparent: the index-based parser accepts exactly what the
// split-based one accepted, with the same trace ID.
func FuzzParseTraceparent(f *testing.F) {
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, s := range []string{"00-" + tid + "-00f067aa0ba902b7-01", "01-" + tid + "-00f067aa0ba902b7-01-", "01-" + tid + "-00f067aa0ba902b7-01--x",
		"00-" + tid + "-00f067aa0ba902b7-01-", "0-0" + tid + "-00f067aa0ba902b7-01", "00-" + tid + "-00f067aa0ba902b7-0-1", "", "----"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := parseTraceparent(v)
		wid, wok := splitTraceparent(v)
		if id != wid || ok != wok {
			t.Fatalf("parseTraceparent(%q) = %q,%v; split form %q,%v", v, id, ok, wid, wok)
		}
	})
}

// The memoised route children are the vectors' own: counts land on the
// exported series, one miss per route and status, bounded.
func TestRouteCacheIsTheVectorsChild(t *testing.T) {
	m, err := newHTTPMetrics(nil, &httpx.ListenerStats{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.observe(pathTask, 200, time.Millisecond)
	}
	m.observe(pathTask, 0, time.Millisecond) // nothing written: 200
	m.observe(pathTask, 429, time.Millisecond)
	var out dto.Metric
	if err := m.requests.WithLabelValues(pathTask, "200").Write(&out); err != nil || out.GetCounter().GetValue() != 4 {
		t.Fatalf("requests{200} = %v (%v), want 4", out.GetCounter().GetValue(), err)
	}
	if err := m.duration.WithLabelValues(pathTask).(prometheus.Histogram).Write(&out); err != nil || out.GetHistogram().GetSampleCount() != 5 {
		t.Fatalf("duration count = %v (%v), want 5", out.GetHistogram().GetSampleCount(), err)
	}
	if n := len(*m.byRoute.c.Load()); n != 2 {
		t.Fatalf("%d cached route/status pairs, want 2", n)
	}
	for i := range maxCachedRoutes + 5 {
		m.observe("unmatched", 1000+i, time.Millisecond)
	}
	if n := len(*m.byRoute.c.Load()); n != maxCachedRoutes {
		t.Fatalf("cache holds %d, bound %d", n, maxCachedRoutes)
	}
}

// TestRandomHexShape: request IDs are 16 and trace IDs 32 lowercase hex
// digits, different each time, and a trace ID is one wire accepts.
func TestRandomHexShape(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		for _, n := range []int{8, 16} {
			id := randomHex(n)
			if len(id) != 2*n || !lowerHex(id) || seen[id] {
				t.Fatalf("randomHex(%d) = %q (seen before: %v)", n, id, seen[id])
			}
			seen[id] = true
		}
	}
	if _, ok := wire.TraceIDBytes(randomHex(16)); !ok {
		t.Fatal("a generated trace ID is not a valid trace_id")
	}
}
