package backend

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestDetectOllama(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/tags" {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, `{"models":[{"name":"qwen2.5:7b","size":1},{"name":"llama3.2:latest"}]}`)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	base, models, ok := DetectOllama(context.Background(), addr)
	if !ok || base != "http://"+addr+"/v1" || !slices.Equal(models, []string{"llama3.2:latest", "qwen2.5:7b"}) {
		t.Fatalf("base %q models %v ok %v", base, models, ok)
	}
	// The detected base URL feeds NewOpenAI directly.
	if _, err := NewOpenAI(base); err != nil {
		t.Fatal(err)
	}
}

func TestDetectOllamaNegative(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, `{"status":"something else"}`) // answers, but is not Ollama
	}))
	t.Cleanup(other.Close)
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, addr := range []string{
		strings.TrimPrefix(other.URL, "http://"),
		strings.TrimPrefix(notFound.URL, "http://"),
		closed,
		"not an address",
	} {
		if _, _, ok := DetectOllama(context.Background(), addr); ok {
			t.Fatalf("%s detected as Ollama", addr)
		}
	}
}

func TestDetectOllamaEmpty(t *testing.T) {
	// Ollama with nothing pulled: detected, but no models to route.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, `{"models":[]}`)
	}))
	t.Cleanup(srv.Close)
	_, models, ok := DetectOllama(context.Background(), strings.TrimPrefix(srv.URL, "http://"))
	if !ok || len(models) != 0 {
		t.Fatalf("models %v ok %v", models, ok)
	}
}
