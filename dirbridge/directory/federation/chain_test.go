package federation

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/spectest"
)

type chainFixture struct {
	FixtureVersion string            `json:"fixture_version"`
	Status         string            `json:"status"`
	GenesisRoot    string            `json:"genesis_root"`
	TrustedRoots   map[string]string `json:"trusted_roots"`
	Cases          []struct {
		ID                   string  `json:"id"`
		RootID               string  `json:"root_id"`
		ReplicaAuthorization string  `json:"replica_authorization"`
		Events               []Event `json:"events"`
		Expected             string  `json:"expected"`
	} `json:"cases"`
}

// specPath is a file of the shared IICP spec checkout beside the repository.
func specPath(parts ...string) string {
	base := []string{spectest.Dir()}
	return filepath.Join(append(base, parts...)...)
}

func loadChainFixture(t *testing.T) chainFixture {
	t.Helper()
	raw, err := os.ReadFile(specPath("fixtures", "profiles", "federation-chain-v0.json"))
	if err != nil {
		t.Fatalf("reading federation-chain fixture: %v", err)
	}
	var f chainFixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("decoding federation-chain fixture: %v", err)
	}
	if f.FixtureVersion != "0.1.0-draft" || f.Status != "pre-normative" {
		t.Fatalf("unsupported fixture version %q/%q", f.FixtureVersion, f.Status)
	}
	if len(f.Cases) == 0 {
		t.Fatal("fixture has no cases")
	}
	return f
}

// fixtureDecision runs one case through the same code the replica and seed
// use: CheckStanding for the replica's credential, the trusted-root lookup,
// and Chain for the events.
func fixtureDecision(f chainFixture, roots map[string]ed25519.PublicKey, i int) string {
	c := f.Cases[i]
	now := time.Unix(1_700_000_000, 0)
	exp := now.Add(time.Hour)
	status := ReplicaStatus(c.ReplicaAuthorization)
	if c.ReplicaAuthorization == "expired" {
		status, exp = ReplicaActive, now.Add(-time.Second)
	}
	switch err := CheckStanding(status, exp, now); {
	case errors.Is(err, ErrReplicaExpired):
		return "reject_replica_authorization_expired"
	case err != nil:
		return "reject_replica_authorization"
	}
	pub, ok := roots[c.RootID]
	if !ok {
		return "reject_untrusted_root"
	}
	chain := NewChain(pub, "", 0, f.GenesisRoot)
	for k := range c.Events {
		err := chain.Next(&c.Events[k])
		switch {
		case err == nil:
		case errors.Is(err, ErrSequence):
			return "reject_sequence"
		case errors.Is(err, ErrChainLink):
			return "reject_chain_link"
		case errors.Is(err, ErrSignature):
			return "reject_signature"
		default:
			return "unexpected: " + err.Error()
		}
	}
	return "accept"
}

// TestDIR_FED_01_FixtureChainVerifier runs the verifier over every case of
// fixtures/profiles/federation-chain-v0.json (DIR-FED-01, -02, -04, -23).
func TestDIR_FED_01_FixtureChainVerifier(t *testing.T) {
	f := loadChainFixture(t)
	if f.GenesisRoot != GenesisRoot {
		t.Fatalf("fixture genesis_root %s != GenesisRoot %s", f.GenesisRoot, GenesisRoot)
	}
	roots := map[string]ed25519.PublicKey{}
	for id, h := range f.TrustedRoots {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != ed25519.PublicKeySize {
			t.Fatalf("trusted root %s is not an Ed25519 key", id)
		}
		roots[id] = b
	}
	ran := 0
	for i, c := range f.Cases {
		t.Run(c.ID, func(t *testing.T) {
			ran++
			if got := fixtureDecision(f, roots, i); got != c.Expected {
				t.Fatalf("decision %q, fixture expects %q", got, c.Expected)
			}
		})
	}
	if ran != len(f.Cases) {
		t.Fatalf("ran %d of %d fixture cases", ran, len(f.Cases))
	}
}

// TestDIR_FED_01_FixtureSignerReproduces re-signs every event of every
// accepted fixture case with our signer and requires byte-identical
// signatures and prev_hash links. The fixture's genesis-a key is the
// conventional test seed 0x11×32; the test proves that by deriving the
// fixture's public key from it, so a changed fixture fails here instead of
// passing vacuously.
func TestDIR_FED_01_FixtureSignerReproduces(t *testing.T) {
	f := loadChainFixture(t)
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = 0x11
	}
	key := ed25519.NewKeyFromSeed(seed)
	if got := hex.EncodeToString(key.Public().(ed25519.PublicKey)); got != f.TrustedRoots["genesis-a"] {
		t.Fatalf("test seed derives %s, fixture root genesis-a is %s", got, f.TrustedRoots["genesis-a"])
	}
	signedCases := 0
	for _, c := range f.Cases {
		if c.Expected != "accept" && c.Expected != "reject_untrusted_root" &&
			c.Expected != "reject_replica_authorization" && c.Expected != "reject_replica_authorization_expired" {
			continue // events deliberately corrupted: nothing for a signer to reproduce
		}
		t.Run(c.ID, func(t *testing.T) {
			prev := GenesisRoot
			for _, want := range c.Events {
				ev := want
				ev.Sig, ev.PrevHash = "", prev
				if err := Sign(key, &ev); err != nil {
					t.Fatalf("seq %d: %v", want.Seq, err)
				}
				if ev.PrevHash != want.PrevHash || ev.Sig != want.Sig {
					t.Fatalf("seq %d: signer produced prev_hash %s sig %s, fixture has %s %s",
						want.Seq, ev.PrevHash, ev.Sig, want.PrevHash, want.Sig)
				}
				prev = ChainHash(ev.Sig)
			}
			signedCases++
		})
	}
	if signedCases == 0 {
		t.Fatal("no fixture case was re-signed")
	}
}

// TestDIR_FED_01_TamperDetection covers what the fixture does not:
// payload edits, replays, reordering and a foreign signer.
func TestDIR_FED_01_TamperDetection(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	pub := key.Public().(ed25519.PublicKey)
	const did = "did:web:seed.test"
	mk := func(prev string, seq int64, payload string) Event {
		ev := Event{EventID: "e" + string(rune('0'+seq)), EventType: EventRegister, Seq: seq,
			TsMs: 1700000000000 + seq, Payload: json.RawMessage(payload), PrevHash: prev, SignerDID: did}
		if err := Sign(key, &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	e1 := mk(GenesisRoot, 1, `{"node_id":"a"}`)
	e2 := mk(ChainHash(e1.Sig), 2, `{"node_id":"b"}`)
	e3 := mk(ChainHash(e2.Sig), 3, `{"node_id":"c"}`)
	_, other, _ := ed25519.GenerateKey(nil)
	forged := e2
	forged.Sig = ""
	if err := Sign(other, &forged); err != nil {
		t.Fatal(err)
	}
	tampered := e2
	tampered.Payload = json.RawMessage(`{"node_id":"evil"}`)
	wrongDID := e2
	wrongDID.SignerDID = "did:web:evil.test"
	unsigned := e2
	unsigned.Sig = ""
	cases := []struct {
		name string
		seq  []Event
		want error
	}{
		{"in order", []Event{e1, e2, e3}, nil},
		{"replay of an applied event", []Event{e1, e2, e2}, ErrSequence},
		{"reordered", []Event{e1, e3, e2}, ErrChainLink},
		{"deleted event", []Event{e1, e3}, ErrChainLink},
		{"payload edited after signing", []Event{e1, tampered}, ErrSignature},
		{"signed by another key", []Event{e1, forged}, ErrSignature},
		{"foreign signer_did", []Event{e1, wrongDID}, ErrSigner},
		{"unsigned", []Event{e1, unsigned}, ErrSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewChain(pub, did, 0, GenesisRoot)
			var err error
			for i := range tc.seq {
				if err = c.Next(&tc.seq[i]); err != nil {
					break
				}
			}
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
