package cx

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/meshnode/meshnode/wire"
)

func openRing(tb testing.TB, path, node string, clk *fakeClock, opts ...Option) *KeyRing {
	tb.Helper()
	r, err := OpenKeyRing(path, node, append([]Option{WithClock(clk.Now), WithLogger(quietLog)}, opts...)...)
	if err != nil {
		tb.Fatalf("OpenKeyRing: %v", err)
	}
	return r
}

// sealTo seals a test call to the ring's current public key.
func sealTo(tb testing.TB, r *KeyRing, clk *fakeClock, taskID string) []byte {
	tb.Helper()
	rk, werr := ParseRecipientKey(r.PublicKey(), clk.Now())
	if werr != nil {
		tb.Fatalf("ParseRecipientKey: %v", werr)
	}
	body, _, werr := Seal(testCall(taskID), rk)
	if werr != nil {
		tb.Fatalf("Seal: %v", werr)
	}
	return body
}

// TestCX_01_PublicKeyShape: the advertised key has the §3.1 shape and
// validates against schemas/nodelist.json $defs.CxPublicKey; the CX key is
// under cx_public_key, never under public_key.
func TestCX_01_PublicKeyShape(t *testing.T) {
	clk := newFakeClock()
	r := openRing(t, "", "node-a", clk)
	pub := r.PublicKey()
	raw, err := decode(pub.Key)
	if err != nil || len(raw) != keySize || strings.Contains(pub.Key, "=") {
		t.Fatalf("key %q is not 32 unpadded base64url bytes", pub.Key)
	}
	if len(pub.KeyID) != 16 || strings.Trim(pub.KeyID, "0123456789abcdef") != "" {
		t.Fatalf("key_id %q is not 8 hex bytes", pub.KeyID)
	}
	na, err := time.Parse(time.RFC3339, pub.NotAfter)
	if err != nil || na.Sub(clk.Now()) > MaxLifetime || !na.After(clk.Now()) {
		t.Fatalf("not_after %q", pub.NotAfter)
	}
	b, _ := json.Marshal(pub)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["hybrid_pq"] != nil || m["algorithm"] != "X25519" || m["encoding"] != "base64url" {
		t.Fatalf("advertised key = %s", b)
	}
	if _, ok := m["hybrid_pq"]; !ok {
		t.Fatalf("hybrid_pq must be present as null: %s", b)
	}
	if _, ok := m["public_key"]; ok {
		t.Fatalf("CX key material under public_key: %s", b)
	}
	validateCxPublicKey(t, b)
	summary, _ := json.Marshal(wire.NodeSummary{NodeID: "n", CXPublicKey: &pub, KeyReady: true})
	if !strings.Contains(string(summary), `"cx_public_key":{`) {
		t.Fatalf("node summary = %s", summary)
	}
}

// validateCxPublicKey checks doc against the spec schema's CxPublicKey.
func validateCxPublicKey(t *testing.T, doc []byte) {
	t.Helper()
	schemaPath := spectest.Path(t, "schemas", "nodelist.json")
	f, err := os.Open(schemaPath)
	if err != nil {
		t.Fatalf("spec schema not available: %v", err)
	}
	defer f.Close()
	schemaDoc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("nodelist.json", schemaDoc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("nodelist.json#/$defs/CxPublicKey")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(doc)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("cx_public_key does not match the spec schema: %v", err)
	}
}

// TestCX_KeyFilePersistence: the ring is created 0600, reloads to the same
// key, and an insecure or corrupted file is refused, not repaired.
func TestCX_KeyFilePersistence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DefaultFileName)
	clk := newFakeClock()
	r1 := openRing(t, path, "node-a", clk)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", fi.Mode(), err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), r1.PublicKey().KeyID) {
		t.Fatal("key file does not name its key id")
	}
	r2 := openRing(t, path, "node-a", clk)
	if r1.PublicKey().Key != r2.PublicKey().Key {
		t.Fatal("reload produced a different key")
	}
	// A message sealed to the first instance opens with the reloaded one.
	if _, werr := newTestProvider(t, r2, clk).Open(sealTo(t, r1, clk, "t")); werr != nil {
		t.Fatalf("reloaded ring cannot open: %v", werr)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyRing(path, "node-a", WithClock(clk.Now)); !errors.Is(err, paths.ErrInsecure) {
		t.Fatalf("world-readable key file: %v", err)
	}
	_ = os.Chmod(path, 0o600)

	corrupt := strings.Replace(string(data), r1.PublicKey().KeyID, "0000000000000000", 1)
	if err := os.WriteFile(path, []byte(corrupt), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyRing(path, "node-a", WithClock(clk.Now)); err == nil || !strings.Contains(err.Error(), "key_id") {
		t.Fatalf("corrupted key file: %v", err)
	}
	for name, content := range map[string]string{
		"not json":    "{",
		"version 2":   `{"version":2,"keys":[]}`,
		"short key":   `{"version":1,"keys":[{"key_id":"x","private_key":"AAAA","created_at":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z"}]}`,
		"two current": `{"version":1,"keys":[` + keyEntryJSON(t) + `,` + keyEntryJSON(t) + `]}`,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyRing(path, "node-a", WithClock(clk.Now)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func keyEntryJSON(tb testing.TB) string {
	k := newRingKey(newKey(tb), newFakeClock().Now(), DefaultLifetime)
	b, _ := json.Marshal(ringFileKey{KeyID: k.id, PrivateKey: encode(k.priv.Bytes()), CreatedAt: k.created.Format(time.RFC3339), NotAfter: k.notAfter.Format(time.RFC3339)})
	return string(b)
}

// TestCX_NODE_02_NoKeyReuseAcrossNodeIDs: a ring stored for another node_id
// is replaced by a fresh key, never reused.
func TestCX_NODE_02_NoKeyReuseAcrossNodeIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultFileName)
	clk := newFakeClock()
	a := openRing(t, path, "node-a", clk)
	b := openRing(t, path, "node-b", clk)
	if a.PublicKey().Key == b.PublicKey().Key || len(b.KeyIDs()) != 1 {
		t.Fatal("key reused across node_ids")
	}
	if _, werr := newTestProvider(t, b, clk).Open(sealTo(t, a, clk, "t")); werr == nil {
		t.Fatal("node-b opened a message for node-a's key")
	}
}

// TestCX_07_RotationAndGrace: rotation makes a new key current; the old key
// decrypts during the grace period and stops after it; the rotation is
// persisted and the callback sees the new key (CX-NODE-01, CX-07).
func TestCX_07_RotationAndGrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultFileName)
	clk := newFakeClock()
	var notified atomic.Value
	r := openRing(t, path, "node-a", clk, WithGrace(time.Hour), WithOnRotate(func(k wire.CXPublicKey) { notified.Store(k.KeyID) }))
	oldID := r.PublicKey().KeyID
	oldBody := sealTo(t, r, clk, "old")

	clk.Advance(DefaultLifetime - DefaultRotateBefore - time.Minute)
	if rotated, err := r.Maintain(); err != nil || rotated {
		t.Fatalf("Maintain before the window = %v, %v", rotated, err)
	}
	clk.Advance(2 * time.Minute)
	if rotated, err := r.Maintain(); err != nil || !rotated {
		t.Fatalf("Maintain in the window = %v, %v", rotated, err)
	}
	newID := r.PublicKey().KeyID
	if newID == oldID || notified.Load() != newID {
		t.Fatalf("rotation: old %s new %s notified %v", oldID, newID, notified.Load())
	}
	if ids := r.KeyIDs(); len(ids) != 2 || ids[0] != newID || ids[1] != oldID {
		t.Fatalf("KeyIDs = %v", ids)
	}
	reloaded := openRing(t, path, "node-a", clk, WithGrace(time.Hour))
	if reloaded.PublicKey().KeyID != newID || len(reloaded.KeyIDs()) != 2 {
		t.Fatalf("rotation not persisted: %v", reloaded.KeyIDs())
	}

	p := newTestProvider(t, r, clk, WithErrorModel(Granular))
	if _, werr := p.Open(oldBody); werr != nil {
		t.Fatalf("old key in grace: %v", werr)
	}
	if _, werr := p.Open(sealTo(t, r, clk, "new")); werr != nil {
		t.Fatalf("new key: %v", werr)
	}
	clk.Advance(time.Hour)
	if _, werr := p.Open(oldBody); werr == nil || werr.Code != wire.CodeE060 {
		t.Fatalf("old key after grace: %v, want E060", werr)
	}
	if _, err := r.Maintain(); err != nil || len(r.KeyIDs()) != 1 {
		t.Fatalf("retired key not pruned: %v %v", r.KeyIDs(), err)
	}
}

// TestCX_NODE_01_ExpiredKeyRotatesOnOpen: a node that was down past its
// key's not_after rotates on start, and the expired key never decrypts.
func TestCX_NODE_01_ExpiredKeyRotatesOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultFileName)
	clk := newFakeClock()
	r := openRing(t, path, "node-a", clk)
	body := sealTo(t, r, clk, "t")
	oldID := r.PublicKey().KeyID
	clk.Advance(DefaultLifetime + time.Hour)
	r2 := openRing(t, path, "node-a", clk)
	if r2.PublicKey().KeyID == oldID {
		t.Fatal("expired key still current")
	}
	_, werr := newTestProvider(t, r2, clk, WithErrorModel(Granular)).Open(body)
	if werr == nil || werr.Code != wire.CodeE063 {
		t.Fatalf("expired key: %v, want E063", werr)
	}
}

// TestCX_RingBounded: however often it rotates, the ring holds ≤ MaxKeys.
func TestCX_RingBounded(t *testing.T) {
	clk := newFakeClock()
	r := openRing(t, "", "n", clk, WithGrace(MaxGrace))
	for i := 0; i < MaxKeys*3; i++ {
		if err := r.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.KeyIDs()); n != MaxKeys {
		t.Fatalf("ring holds %d keys, want %d", n, MaxKeys)
	}
}

// TestCX_RingOptions: out-of-range settings are refused.
func TestCX_RingOptions(t *testing.T) {
	for name, o := range map[string]Option{
		"lifetime>90d":    WithLifetime(MaxLifetime + time.Hour),
		"lifetime0":       WithLifetime(0),
		"grace>max":       WithGrace(MaxGrace + time.Second),
		"negative grace":  WithGrace(-time.Second),
		"rotate>=life":    WithRotateBefore(DefaultLifetime),
		"negative rotate": WithRotateBefore(-1),
		"interval0":       WithMaintainInterval(0),
		"nil clock":       WithClock(nil),
		"nil logger":      WithLogger(nil),
	} {
		if _, err := OpenKeyRing("", "n", o); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	for name, o := range map[string]ProviderOption{
		"max body 0":  WithMaxBody(0),
		"replay ttl0": WithReplayCache(0, 1),
		"replay n0":   WithReplayCache(time.Second, 0),
		"nil clock":   WithProviderClock(nil),
		"nil logger":  WithProviderLogger(nil),
	} {
		if _, err := NewProvider(nil, o); err == nil {
			t.Errorf("provider %s accepted", name)
		}
	}
}

// TestCX_ServeRotatesOnSchedule: the Serve loop runs Maintain on its
// ticker and returns when the context ends.
func TestCX_ServeRotatesOnSchedule(t *testing.T) {
	clk := newFakeClock()
	r := openRing(t, "", "n", clk, WithMaintainInterval(time.Millisecond))
	first := r.PublicKey().KeyID
	clk.Advance(DefaultLifetime) // due for rotation at the next tick
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for r.PublicKey().KeyID == first {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("Serve did not rotate the due key")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
