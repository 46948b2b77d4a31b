package dirclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		header   string
		body     string
		sentinel error
		code     wire.Code
		retry    time.Duration
	}{
		// DIR-HB-02: invalid token.
		{"401", 401, "", `{"error":{"code":"unauthorized","message":"bad token"}}`, ErrUnauthorized, wire.CodeUnauthorized, 0},
		// DIR-HB-03: unknown node.
		{"404", 404, "", `{"error":{"code":"not_found","message":"no"}}`, ErrNotFound, wire.CodeNotFound, 0},
		// DIR-RL-01: registration rate limit with Retry-After seconds.
		{"429 header", 429, "7", `{"error":{"code":"IICP-E034","message":"slow down"}}`, ErrRateLimited, wire.CodeE034, 7 * time.Second},
		// retry_after in the envelope when no header is sent.
		{"429 envelope", 429, "", `{"error":{"code":"rate_limited","message":"x","retry_after":3}}`, ErrRateLimited, wire.CodeRateLimited, 3 * time.Second},
		// DIR-REG-04: liveness failure is a refusal, not an outage.
		{"422", 422, "", `{"error":{"code":"liveness_failed","message":"probe failed"}}`, ErrRejected, wire.CodeLivenessFailed, 0},
		// A non-JSON 502 from a proxy in front of the directory.
		{"502 html", 502, "", `<html>bad gateway</html>`, ErrUnavailable, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c, _ := New(srv.URL)
			_, err := c.Heartbeat(context.Background(), "secret-token-value", &wire.Heartbeat{NodeID: "n"})
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("err %v is not %v", err, tc.sentinel)
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code || e.RetryAfter != tc.retry || e.Status != tc.status {
				t.Fatalf("got %+v", e)
			}
			if strings.Contains(err.Error(), "secret-token-value") {
				t.Fatal("token leaked into the error")
			}
		})
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _ := New(url)
	_, err := c.Register(context.Background(), &wire.RegisterRequest{Endpoint: "http://x"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("closed directory: %v", err)
	}
	if strings.Contains(err.Error(), url+"/v1/register") {
		t.Fatalf("error repeats the URL: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"5", 5 * time.Second, true},
		{"0", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true}, // past date: retry now
		{"-1", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestOversizeResponseRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = w.Write([]byte(`{"ok":true,"pad":"` + strings.Repeat("x", maxBody) + `"}`))
	}))
	defer srv.Close()
	c, _ := New(srv.URL)
	if _, err := c.Heartbeat(context.Background(), "t", &wire.Heartbeat{}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversize body accepted: %v", err)
	}
}

// DIR-FED-05/06: follow 307 (at most 3 in a row); never hand the token to
// another host; never downgrade https to http.
func TestDIR_FED_05_06_Redirects(t *testing.T) {
	var sawAuth string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth = r.Header.Get("Authorization")
		writeJSON(w, 200, wire.Pong{OK: true, NextHeartbeatMs: 1000})
	}))
	defer target.Close()
	// 127.0.0.1 vs localhost: a different host for net/http's header policy.
	targetURL := strings.Replace(target.URL, "127.0.0.1", "localhost", 1)
	hops := 0
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hops++
		if r.URL.Query().Get("loop") != "" {
			http.Redirect(w, r, r.URL.String(), http.StatusTemporaryRedirect)
			return
		}
		http.Redirect(w, r, targetURL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer origin.Close()
	c, _ := New(origin.URL)
	pong, err := c.Heartbeat(context.Background(), "tok", &wire.Heartbeat{NodeID: "n"})
	if err != nil || !pong.OK {
		t.Fatalf("307 not followed: %v", err)
	}
	if sawAuth != "" {
		t.Fatal("Authorization forwarded to another host")
	}
	loop, _ := New(origin.URL + "/x?loop=1")
	hops = 0
	if _, err := loop.Discover(context.Background(), Query{Intent: wire.IntentChat}); err == nil {
		t.Fatal("redirect loop not stopped")
	}
	if hops != maxRedirects {
		t.Fatalf("followed %d hops, want %d", hops, maxRedirects)
	}
	req := httptest.NewRequest("GET", "http://d.example/v1/discover", nil)
	via := []*http.Request{httptest.NewRequest("GET", "https://d.example/v1/discover", nil)}
	if checkRedirect(req, via) == nil {
		t.Fatal("https to http redirect allowed")
	}
}

func TestDiscoverQuery(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RawQuery
		writeJSON(w, 200, wire.NodeList{Nodes: []wire.NodeSummary{{NodeID: "a", Score: 0.5, Available: true}}, Count: 1})
	}))
	defer srv.Close()
	c, _ := New(srv.URL + "/")
	nl, err := c.Discover(context.Background(), Query{Intent: wire.IntentChat, QoS: "batch", Region: "eu", Limit: 3})
	if err != nil || nl.Count != 1 || nl.Nodes[0].NodeID != "a" {
		t.Fatalf("discover %+v %v", nl, err)
	}
	want := "intent=urn%3Aiicp%3Aintent%3Allm%3Achat%3Av1&limit=3&qos=batch&region=eu"
	if got != want {
		t.Fatalf("query %q, want %q", got, want)
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "d.example", "ftp://d.example", "http://"} {
		if _, err := New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
