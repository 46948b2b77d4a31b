package daemon

import (
	"crypto/ed25519"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

// memberDaemon is the part of a daemon membership.json touches: the
// configured directories, the key set and the engine that verifies with it.
func memberDaemon(t *testing.T, state string, dirs ...string) *daemon {
	t.Helper()
	r, err := backend.NewRouter(backend.Route{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: backend.NewEcho(), Models: []string{"m"}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := node.New(node.Config{NodeID: "0b6e1f6c-8c1a-4b7e-9f00-000000000001", MaxConcurrent: 2}, r)
	if err != nil {
		t.Fatal(err)
	}
	return &daemon{o: Options{Paths: paths.Paths{StateDir: state, Membership: filepath.Join(state, "membership.json")}},
		log: slog.New(slog.DiscardHandler), dirURLs: dirs, dirKeys: map[string]ed25519.PublicKey{}, engine: eng}
}

// TestMembership_SurvivesRestart: the directory keys and the credential a
// node held are restored at start-up from membership.json (0600), so a
// node restarted while its directory is down still verifies peers and is
// still accepted; the key of a directory no longer configured is dropped,
// and a file other users can read is refused.
func TestMembership_SurvivesRestart(t *testing.T) {
	state := t.TempDir()
	const dirA, dirB = "https://a.example", "https://b.example"
	pubA, _, _ := ed25519.GenerateKey(nil)
	pubB, _, _ := ed25519.GenerateKey(nil)
	before := memberDaemon(t, state, dirA, dirB)
	before.dirKeys[dirA], before.dirKeys[dirB] = pubA, pubB
	before.member = membershipFile{Credential: "cred-for-test", Directory: dirA, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()}
	before.saveMembership()
	if fi, err := os.Stat(before.o.Paths.Membership); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("membership.json: %v %v", fi, err)
	}

	after := memberDaemon(t, state, dirA) // b.example is no longer configured
	if err := after.loadMembership(); err != nil {
		t.Fatal(err)
	}
	if !after.hasMembership() || after.member.ExpiresAt != before.member.ExpiresAt {
		t.Fatalf("credential not restored: %+v", after.member)
	}
	if k := after.dirKeys[dirA]; !k.Equal(pubA) || len(after.dirKeys) != 1 {
		t.Fatalf("keys restored: %v", after.dirKeys)
	}

	if err := os.Chmod(before.o.Paths.Membership, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := memberDaemon(t, state, dirA).loadMembership(); err == nil {
		t.Fatal("world-readable membership.json accepted")
	}
}

// TestTokenCache_ReusesUntilMargin: a reusable consumer token is fetched
// once per target and intent and reused until tokenMargin before expiry.
func TestTokenCache_ReusesUntilMargin(t *testing.T) {
	c := newTokenCache()
	now := time.Now()
	fetches := 0
	fetch := func() (string, time.Time) { fetches++; return "tok", now.Add(5 * time.Minute) }
	for range 3 {
		if c.get("node", wire.IntentChat, now, fetch) != "tok" {
			t.Fatal("no token")
		}
	}
	if fetches != 1 {
		t.Fatalf("%d fetches for one target, want 1", fetches)
	}
	c.get("node", wire.IntentChat, now.Add(5*time.Minute-tokenMargin), fetch)
	c.get("other", wire.IntentChat, now, fetch)
	if fetches != 3 {
		t.Fatalf("%d fetches, want a new one near expiry and one per target", fetches)
	}
	if c.get("x", wire.IntentChat, now, func() (string, time.Time) { return "", time.Time{} }) != "" {
		t.Fatal("empty fetch cached")
	}
}
