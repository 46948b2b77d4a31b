package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
)

// TestOpenAIStreamingAcrossMesh: two `meshnode up` processes on a mesh.
// An OpenAI client (plain HTTP, as curl would send it) asks node 1's
// OpenAI-compatible API for a streamed chat with a model only node 2
// serves. The tokens arrive as OpenAI SSE chunks while node 2's backend is
// still generating (one token per 20 ms), node 1's own backend is never
// used, GET /v1/models lists the model with its serving count, and a
// client that hangs up mid-answer cancels the backend request on node 2.
func TestOpenAIStreamingAcrossMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	own := testutil.NewSlowLLM("other-model", 3, time.Millisecond)
	remote := testutil.NewSlowLLM("slow-model", 60, 20*time.Millisecond)
	ownSrv, remoteSrv := httptest.NewServer(own.Handler()), httptest.NewServer(remote.Handler())
	t.Cleanup(ownSrv.Close)
	t.Cleanup(remoteSrv.Close)
	base := t.TempDir()
	homes := []string{filepath.Join(base, "dir"), filepath.Join(base, "n1"), filepath.Join(base, "n2")}
	for _, h := range homes {
		writeTestConfig(t, h)
	}
	dir := start(t, "directory", bin, "--home", homes[0], "directory", "--dev", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	args := func(home, backend string) []string {
		return []string{"--home", home, "up", "--dev", "--directory", dirURL, "--backend", backend,
			"--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	n1 := start(t, "node1", bin, args(homes[1], ownSrv.URL)...)
	start(t, "node2", bin, args(homes[2], remoteSrv.URL)...)
	rt := runtimeOf(t, n1, homes[1])
	if rt.OpenAIURL == "" || !strings.Contains(n1.stdout(), "OpenAI API") {
		t.Fatalf("node 1 announces no OpenAI API: %+v\n%s", rt, n1.stdout())
	}
	eventually(t, 30*time.Second, "node 1 to learn node 2's slow-model on the mesh", func() bool {
		for _, p := range peers(t, bin, homes[1]) {
			if slices.Contains(p.Models, "slow-model") {
				return true
			}
		}
		return false
	})
	checkModels(t, rt.OpenAIURL)
	checkStreamedChat(t, rt.OpenAIURL, remote)
	if own.Started() != 0 {
		t.Fatalf("node 1's own backend ran %d times for a model it does not serve", own.Started())
	}
	checkHangUpCancels(t, rt.OpenAIURL, remote)
	checkCallStreams(t, bin, homes[1], remote)
}

// checkCallStreams: `meshnode call --stream` prints node 2's tokens as
// they arrive (the first before the backend finished); --no-stream prints
// the same answer at the end.
func checkCallStreams(t *testing.T, bin, home string, remote *testutil.SlowLLM) {
	t.Helper()
	p := start(t, "call --stream", bin, "--home", home, "call", "--stream", "--model", "slow-model", "tell me a story")
	var firstAt time.Time
	eventually(t, 30*time.Second, "the first token on call's stdout", func() bool {
		if strings.Contains(p.stdout(), "tok0") {
			firstAt = time.Now()
			return true
		}
		return p.exited()
	})
	eventually(t, 30*time.Second, "call --stream to exit", p.exited)
	if p.err != nil || strings.TrimSpace(p.stdout()) != strings.TrimSpace(remote.Text()) {
		t.Fatalf("call --stream: %v, printed %q", p.err, p.stdout())
	}
	fin := remote.FinishedAt()
	if firstAt.IsZero() || !firstAt.Before(fin[len(fin)-1]) {
		t.Fatalf("call printed its first token at %v, the backend finished at %v", firstAt, fin[len(fin)-1])
	}
	out, code := run(t, bin, 30*time.Second, "--home", home, "call", "--no-stream", "--model", "slow-model", "tell me a story")
	if code != 0 || strings.TrimSpace(out) != strings.TrimSpace(remote.Text()) {
		t.Fatalf("call --no-stream: exit %d, printed %q", code, out)
	}
}

func checkModels(t *testing.T, api string) {
	t.Helper()
	resp, err := plainClient.Get(api + "/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID           string `json:"id"`
			ServingNodes int    `json:"serving_nodes"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/models: %d %v", resp.StatusCode, err)
	}
	found := map[string]int{}
	for _, m := range list.Data {
		found[m.ID] = m.ServingNodes
	}
	if found["slow-model"] != 1 || found["other-model"] != 1 {
		t.Fatalf("models %v, want slow-model and other-model served by one node each", found)
	}
}

// streamChat posts a streamed chat and returns the response.
func streamChat(t *testing.T, ctx context.Context, api string) *http.Response {
	t.Helper()
	body := `{"model":"slow-model","stream":true,"messages":[{"role":"user","content":"stream me a story"}]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp
}

func checkStreamedChat(t *testing.T, api string, remote *testutil.SlowLLM) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp := streamChat(t, ctx, api)
	defer resp.Body.Close()
	var text strings.Builder
	var firstAt time.Time
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var ch struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &ch); err != nil || ch.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %q: %v", data, err)
		}
		for _, c := range ch.Choices {
			if c.Delta.Content != "" && firstAt.IsZero() {
				firstAt = time.Now()
			}
			text.WriteString(c.Delta.Content)
		}
	}
	if !done || text.String() != remote.Text() {
		t.Fatalf("stream ended (done=%v) with %q, want %q", done, text.String(), remote.Text())
	}
	fin := remote.FinishedAt()
	if len(fin) != 1 || !firstAt.Before(fin[0]) {
		t.Fatalf("first token at %v, node 2's backend finished at %v: the answer was buffered", firstAt, fin)
	}
}

func checkHangUpCancels(t *testing.T, api string, remote *testutil.SlowLLM) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := streamChat(t, ctx, api)
	sc := bufio.NewScanner(resp.Body)
	for n := 0; n < 3 && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "data: ") {
			n++
		}
	}
	cancel()
	resp.Body.Close()
	eventually(t, 15*time.Second, "node 2's backend request to be cancelled", func() bool { return remote.Cancelled() == 1 })
	if remote.Finished() != 1 {
		t.Fatalf("node 2's backend finished %d generations, want only the first", remote.Finished())
	}
	eventually(t, 10*time.Second, "node 2's backend to be idle", func() bool { return remote.Started() == remote.Finished()+remote.Cancelled() })
}
