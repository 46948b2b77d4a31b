package backend

import (
	"context"
	"net"
	"net/http"
	"sort"
	"time"
)

const (
	// DefaultOllamaAddr is Ollama's default listen address.
	DefaultOllamaAddr = "127.0.0.1:11434"
	// detectTimeout bounds autodetection: a local Ollama answers /api/tags
	// in milliseconds, and `meshnode up` should not stall when none runs.
	detectTimeout = 1500 * time.Millisecond
	// maxTagsBytes caps the /api/tags body read during detection.
	maxTagsBytes = 4 << 20
)

// DetectOllama probes an Ollama server at addr (host:port; "" means
// DefaultOllamaAddr) with GET /api/tags. ok reports that an Ollama server
// answered; models lists what it has pulled, sorted, and may be empty (the
// caller should then fall back to echo and tell the operator to pull one).
// baseURL is its OpenAI-compatible root, for NewOpenAI.
func DetectOllama(ctx context.Context, addr string) (baseURL string, models []string, ok bool) {
	if addr == "" {
		addr = DefaultOllamaAddr
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, detectTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/tags", nil)
	if err != nil {
		return "", nil, false
	}
	// A one-off client: detection must not leave pooled connections behind.
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil,
		DialContext: (&net.Dialer{Timeout: detectTimeout}).DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(hr)
	if err != nil {
		return "", nil, false
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", nil, false
	}
	raw, err := readCapped(ctx, "detect ollama", resp.Body, maxTagsBytes)
	if err != nil {
		return "", nil, false
	}
	models, ok = parseOllamaTags(raw)
	if !ok {
		return "", nil, false // something else listens there
	}
	sort.Strings(models)
	return "http://" + addr + "/v1", models, true
}
