package token

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

const testPeer = "12D3KooWtestpeer"

func memberAt(now time.Time, life time.Duration) Membership {
	return Membership{V: 1, Iss: "https://dir.test", Sub: callerC, PeerID: testPeer,
		Intents: []string{chat}, IAT: now.Unix(), Exp: now.Add(life).Unix()}
}

func TestMembership_RoundTripAndChecks(t *testing.T) {
	dir, other := testKey(1), testKey(2)
	now := time.Unix(1800000000, 0)
	want := MembershipCheck{PeerID: testPeer, NodeID: callerC}
	tok, err := SignMembership(dir, memberAt(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	m, err := VerifyMembership(pubs(other, dir), tok, want, now)
	if err != nil || m.Sub != callerC || m.Intents[0] != chat {
		t.Fatalf("valid credential refused: %v %+v", err, m)
	}
	cases := []struct {
		name string
		keys []ed25519.PublicKey
		tok  string
		want MembershipCheck
		at   time.Time
		err  error
	}{
		{"forged: another key", pubs(other), tok, want, now, ErrSignature},
		{"no keys", nil, tok, want, now, ErrNoKey},
		{"another peer", pubs(dir), tok, MembershipCheck{PeerID: "12D3other", NodeID: callerC}, now, ErrPeer},
		{"another node", pubs(dir), tok, MembershipCheck{PeerID: testPeer, NodeID: nodeA}, now, ErrPeer},
		{"no authenticated peer", pubs(dir), tok, MembershipCheck{}, now, ErrPeer},
		{"expired", pubs(dir), tok, want, now.Add(time.Hour + MembershipGrace), ErrExpired},
		{"not yet valid", pubs(dir), tok, want, now.Add(-time.Minute), ErrNotYetValid},
		{"tampered", pubs(dir), "x" + tok[1:], want, now, ErrSignature},
	}
	for _, c := range cases {
		if _, err := VerifyMembership(c.keys, c.tok, c.want, c.at); !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		}
	}
	// An expired credential still reports its claims, so the refusal can
	// name the expiry.
	if m, err := VerifyMembership(pubs(dir), tok, want, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) || m == nil || m.Exp != now.Add(time.Hour).Unix() {
		t.Fatalf("expired: %v %+v", err, m)
	}
}

func TestMembership_LifetimeCapAndDomain(t *testing.T) {
	dir := testKey(1)
	now := time.Unix(1800000000, 0)
	want := MembershipCheck{PeerID: testPeer, NodeID: callerC}
	long, _ := SignMembership(dir, memberAt(now, MaxMembershipLifetime+time.Second))
	if _, err := VerifyMembership(pubs(dir), long, want, now); !errors.Is(err, ErrLifetime) {
		t.Fatalf("over-long credential: %v", err)
	}
	// A consumer token (another domain) never verifies as a credential,
	// and a credential never as a consumer token.
	ct, _ := SignConsumer(dir, claimsAt(now, nodeA, chat))
	if _, err := VerifyMembership(pubs(dir), ct, want, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("consumer token accepted as membership: %v", err)
	}
	mc, _ := SignMembership(dir, memberAt(now, time.Minute))
	if _, err := VerifyConsumer(pubs(dir), mc, ConsumerCheck{Audience: nodeA, Intent: chat}, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("membership accepted as consumer token: %v", err)
	}
	v2 := memberAt(now, time.Minute)
	v2.V = 2
	tok, _ := SignMembership(dir, v2)
	if _, err := VerifyMembership(pubs(dir), tok, want, now); !errors.Is(err, ErrVersion) {
		t.Fatalf("v2: %v", err)
	}
}

func TestPeerIDFromKey_Shape(t *testing.T) {
	if _, err := PeerIDFromKey(make([]byte, 5)); err == nil {
		t.Fatal("short key accepted")
	}
	id, err := PeerIDFromKey(testKey(3).Public().(ed25519.PublicKey))
	if err != nil || !strings.HasPrefix(id, "12D3KooW") || len(id) != 52 {
		t.Fatalf("peer ID %q %v", id, err)
	}
	if base58([]byte{0, 0, 1}) != "112" {
		t.Fatalf("leading zeros: %q", base58([]byte{0, 0, 1}))
	}
}

// FuzzVerifyMembership: untrusted credentials never panic, and an
// accepted one satisfies every check.
func FuzzVerifyMembership(f *testing.F) {
	key := testKey(8)
	now := time.Unix(1800000000, 0)
	good, _ := SignMembership(key, memberAt(now, time.Hour))
	f.Add(good)
	f.Add("a.b")
	f.Add("")
	keys := pubs(key)
	want := MembershipCheck{PeerID: testPeer, NodeID: callerC}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := VerifyMembership(keys, s, want, now)
		if err == nil && (m.PeerID != testPeer || m.Sub != callerC || m.Exp-m.IAT > int64(MaxMembershipLifetime/time.Second)) {
			t.Fatalf("accepted a credential failing its checks: %+v", m)
		}
	})
}
