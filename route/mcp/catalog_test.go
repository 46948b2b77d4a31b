package mcp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/meshnode/meshnode/wire"
)

// TestCatalog_LocalAndDirectory: intents come from this node and from each
// directory's discover answer for the probe intents, cached for the TTL;
// an unreachable directory adds nothing and fails nothing.
func TestCatalog_LocalAndDirectory(t *testing.T) {
	var asked atomic.Int32
	dir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		nl := wire.NodeList{}
		if r.URL.Query().Get("intent") == wire.IntentEmbedding {
			nl.Nodes = []wire.NodeSummary{{NodeID: testNodeID, Available: true}}
			nl.Count = 1
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(nl)
	}))
	defer dir.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	var dcs []*dirclient.Client
	for _, u := range []string{down.URL, dir.URL} {
		c, err := dirclient.New(u)
		if err != nil {
			t.Fatal(err)
		}
		dcs = append(dcs, c)
	}
	cat := &Catalog{Local: func() []string { return []string{"urn:iicp:intent:x.acme:ocr:v1"} }, Directories: dcs}
	got := cat.Intents(context.Background())
	want := []string{wire.IntentEmbedding, "urn:iicp:intent:x.acme:ocr:v1"}
	if !slices.Equal(got, want) {
		t.Fatalf("intents %v, want %v", got, want)
	}
	n := asked.Load()
	if n != int32(len(DefaultProbe)) {
		t.Fatalf("directory asked %d times, want one per probe intent", n)
	}
	_ = cat.Intents(context.Background())
	if asked.Load() != n {
		t.Fatal("the directory answer was not cached")
	}
}

// TestMCP_CallRegisteredToolOutsideCatalogue: llm_chat stays callable when
// the catalogue does not list it (a directory missed the last probe); the
// router then decides.
func TestMCP_CallRegisteredToolOutsideCatalogue(t *testing.T) {
	m := startMCP(t, startNode(t), "", func(c *Config) {
		c.Intents = func(context.Context) []string { return nil }
	})
	st, res := post(t, m.url, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"llm_chat","arguments":{"messages":[{"role":"user","content":"x"}]}}}`, nil)
	r, _ := res["result"].(map[string]any)
	if st != 200 || r == nil || r["isError"] != false {
		t.Fatalf("%d %v", st, res)
	}
}

// TestToolSchemasMatchRegistry: the embedded input schemas are the intent
// registry's (registry/schemas/llm-*-v1-input.json) minus $schema and $id.
func TestToolSchemasMatchRegistry(t *testing.T) {
	for intent, k := range known {
		var reg, ours map[string]any
		if err := json.Unmarshal(spectest.Read(t, "registry", "schemas", k.schema), &reg); err != nil {
			t.Fatal(err)
		}
		delete(reg, "$schema")
		delete(reg, "$id")
		b, err := schemaFS.ReadFile("schemas/" + k.schema)
		if err != nil || json.Unmarshal(b, &ours) != nil {
			t.Fatalf("%s: embedded schema unreadable: %v", intent, err)
		}
		if !reflect.DeepEqual(reg, ours) {
			t.Errorf("%s: embedded schema differs from the registry's", intent)
		}
	}
}
