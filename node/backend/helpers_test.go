package backend

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeOpenAI is an httptest server speaking the OpenAI wire format the way
// Ollama's /v1 and vLLM do. Tests may replace a route's handler.
type fakeOpenAI struct {
	srv *httptest.Server

	mu       sync.Mutex
	bodies   []map[string]any
	headers  []http.Header
	override map[string]http.HandlerFunc
}

func newFakeOpenAI(tb testing.TB) *fakeOpenAI {
	tb.Helper()
	f := &fakeOpenAI{override: map[string]http.HandlerFunc{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.srv.Close)
	return f
}

// handle replaces the handler for one path ("/v1/chat/completions").
func (f *fakeOpenAI) handle(path string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.override[path] = h
}

// last returns the most recent JSON request body and headers.
func (f *fakeOpenAI) last(tb testing.TB) (map[string]any, http.Header) {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		tb.Fatal("fake backend received no request")
	}
	return f.bodies[len(f.bodies)-1], f.headers[len(f.headers)-1]
}

func (f *fakeOpenAI) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if r.Method == http.MethodPost {
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
			return
		}
	}
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.headers = append(f.headers, r.Header.Clone())
	h := f.override[r.URL.Path]
	f.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	switch r.URL.Path {
	case "/v1/models":
		writeJSON(w, `{"object":"list","data":[{"id":"llama3.2","object":"model"},{"id":"nomic-embed-text","object":"model"}]}`)
	case "/v1/chat/completions":
		f.chat(w, body)
	case "/v1/completions":
		f.completion(w, body)
	case "/v1/embeddings":
		f.embeddings(w, body)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeOpenAI) chat(w http.ResponseWriter, body map[string]any) {
	model, _ := body["model"].(string)
	if stream, _ := body["stream"].(bool); stream {
		writeSSE(w, []string{
			`{"id":"c1","model":"` + model + `","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}`,
			`{"id":"c1","model":"` + model + `","choices":[{"index":0,"delta":{"content":" from"},"finish_reason":null}]}`,
			`{"id":"c1","model":"` + model + `","choices":[{"index":0,"delta":{"content":" fake"},"finish_reason":"stop"}]}`,
			`{"id":"c1","model":"` + model + `","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`,
			`[DONE]`,
		})
		return
	}
	writeJSON(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1.7e9,"model":"`+model+
		`","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from fake"},"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`)
}

func (f *fakeOpenAI) completion(w http.ResponseWriter, body map[string]any) {
	model, _ := body["model"].(string)
	if stream, _ := body["stream"].(bool); stream {
		writeSSE(w, []string{
			`{"id":"t1","model":"` + model + `","choices":[{"index":0,"text":"once upon","finish_reason":null}]}`,
			`{"id":"t1","model":"` + model + `","choices":[{"index":0,"text":" a time","finish_reason":"length"}]}`,
			`[DONE]`,
		})
		return
	}
	writeJSON(w, `{"id":"cmpl-1","object":"text_completion","model":"`+model+
		`","choices":[{"index":0,"text":"once upon a time","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":4,"total_tokens":6}}`)
}

func (f *fakeOpenAI) embeddings(w http.ResponseWriter, body map[string]any) {
	model, _ := body["model"].(string)
	n := 1
	if arr, ok := body["input"].([]any); ok {
		n = len(arr)
	}
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"object":"embedding","index":%d,"embedding":[0.%d,-1.5,2e-3]}`, i, i+1)
	}
	writeJSON(w, `{"object":"list","model":"`+model+`","data":[`+strings.Join(items, ",")+`],"usage":{"prompt_tokens":4,"total_tokens":4}}`)
}

func writeJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

// writeSSE sends each element as one `data:` event, flushing between them.
func writeSSE(w http.ResponseWriter, events []string) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	for _, e := range events {
		_, _ = io.WriteString(w, "data: "+e+"\n\n")
		if fl != nil {
			fl.Flush()
		}
	}
}

// newClient builds an OpenAI client against the fake.
func newClient(tb testing.TB, f *fakeOpenAI, opts ...Option) *OpenAI {
	tb.Helper()
	c, err := NewOpenAI(f.srv.URL+"/v1", opts...)
	if err != nil {
		tb.Fatalf("NewOpenAI: %v", err)
	}
	tb.Cleanup(func() {
		if tr, ok := c.client.Transport.(*http.Transport); ok {
			tr.CloseIdleConnections()
		}
	})
	return c
}

// specPath locates a file in the shared IICP spec checkout.
func specPath(tb testing.TB, parts ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{spectest.Dir()}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("spec file: %v", err)
	}
	return p
}

// registrySchema compiles registry/schemas/<name> read at test time.
func registrySchema(tb testing.TB, name string) *jsonschema.Schema {
	tb.Helper()
	f, err := os.Open(specPath(tb, "registry", "schemas", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		tb.Fatalf("schema %s: %v", name, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(name, doc); err != nil {
		tb.Fatal(err)
	}
	s, err := c.Compile(name)
	if err != nil {
		tb.Fatalf("compile %s: %v", name, err)
	}
	return s
}

// validateJSON checks raw against a compiled schema.
func validateJSON(tb testing.TB, s *jsonschema.Schema, raw []byte) error {
	tb.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		tb.Fatalf("instance is not JSON: %v", err)
	}
	return s.Validate(v)
}
