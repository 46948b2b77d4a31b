package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
	"github.com/meshnode/meshnode/wire/token"
)

// The token format itself is tested in wire/token; these tests drive the
// engine with real tokens and check what the engine adds: keys, the
// caller binding on the mesh, jti replay, and no token in any log.

const (
	callerNodeID = "0b6e1f6c-8c1a-4b7e-9f00-00000000000c"
	otherNodeID  = "0b6e1f6c-8c1a-4b7e-9f00-0000000000bb"
)

func testKey(t testing.TB, seedByte byte) ed25519.PrivateKey {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = seedByte
	}
	return ed25519.NewKeyFromSeed(seed)
}

// mint signs a consumer token for aud with a fresh jti.
func mint(t testing.TB, key ed25519.PrivateKey, now time.Time, aud string, f ...func(*token.Consumer)) string {
	t.Helper()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	c := token.Consumer{V: 1, Iss: "https://dir.test", Sub: callerNodeID, Aud: aud, Intent: wire.IntentChat,
		IAT: now.Unix(), Exp: now.Unix() + 300, JTI: hex.EncodeToString(jti)}
	for _, g := range f {
		g(&c)
	}
	tok, err := token.SignConsumer(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func tokenCall() *wire.Call {
	c := chatCall("hi")
	c.Auth = nil
	return c
}

// TASK-1 via errata v1.5.2: a valid X-IICP-Consumer-Token authorizes without
// auth.node_token; without a directory key the node falls back to node_token.
func TestTASK_1_ConsumerTokenAuthorizes(t *testing.T) {
	key := testKey(t, 3)
	now := time.Now()
	f := newFixture(t, 2)
	tok := mint(t, key, now, testNodeID)
	caller := wire.Caller{Transport: "http", ConsumerToken: tok}
	// No directory key yet: the token cannot be checked, node_token is required.
	wantError(t, f.eng.Execute(context.Background(), tokenCall(), caller), wire.CodeUnauthorized, wire.StatusError)

	f.eng.SetDirectoryKeys(key.Public().(ed25519.PublicKey))
	if r := f.eng.Execute(context.Background(), tokenCall(), caller); r.Error != nil {
		t.Fatalf("valid consumer token refused: %+v", r.Error)
	}
	// Token for another node: refused, and a bad token does not lock out a
	// caller that also holds the node token.
	bad := wire.Caller{Transport: "http", ConsumerToken: mint(t, key, now, otherNodeID)}
	wantError(t, f.eng.Execute(context.Background(), tokenCall(), bad), wire.CodeUnauthorized, wire.StatusError)
	call := tokenCall()
	call.Auth = &wire.Auth{NodeToken: testToken}
	if r := f.eng.Execute(context.Background(), call, bad); r.Error != nil {
		t.Fatalf("node token with bad consumer token refused: %+v", r.Error)
	}
	if strings.Contains(f.logs.String(), tok[:40]) {
		t.Fatal("consumer token logged")
	}
}

// SEC: the attacks of issue 12 at the engine: a captured token replayed
// (same jti), a 100-year token, a token minted for another node, and on
// the mesh a token presented by a peer that is not its subject.
func TestTASK_1_ConsumerTokenAttacksRefused(t *testing.T) {
	key := testKey(t, 4)
	now := time.Now()
	f := newFixture(t, 2)
	f.eng.SetDirectoryKeys(key.Public().(ed25519.PublicKey))
	exec := func(tok, peerNodeID string) *wire.Response {
		return f.eng.Execute(context.Background(), tokenCall(), wire.Caller{Transport: "quic", PeerID: "p", PeerNodeID: peerNodeID, ConsumerToken: tok})
	}
	tok := mint(t, key, now, testNodeID)
	if r := exec(tok, callerNodeID); r.Error != nil {
		t.Fatalf("first use refused: %+v", r.Error)
	}
	wantError(t, exec(tok, callerNodeID), wire.CodeUnauthorized, wire.StatusError) // replay
	century := mint(t, key, now, testNodeID, func(c *token.Consumer) { c.Exp = now.AddDate(100, 0, 0).Unix() })
	wantError(t, exec(century, callerNodeID), wire.CodeUnauthorized, wire.StatusError)
	wantError(t, exec(mint(t, key, now, otherNodeID), callerNodeID), wire.CodeUnauthorized, wire.StatusError)
	// A peer that stole the caller's token presents it under its own key.
	stolen := mint(t, key, now, testNodeID)
	wantError(t, exec(stolen, otherNodeID), wire.CodeUnauthorized, wire.StatusError)
	for _, s := range []string{tok, century, stolen} {
		if strings.Contains(f.logs.String(), s[:40]) {
			t.Fatal("consumer token logged")
		}
	}
}

// TASK-1, operator trust (docs/spec-decisions.md "Home mesh"): a caller
// the transport proved to be of this node's operator is authorised with no
// token, even when it also presented a refused membership credential; a
// refusal the transport reports is the answer when nothing authorises.
func TestTASK_1_SameOperatorAuthorizes(t *testing.T) {
	f := newFixture(t, 2)
	refused := wire.NewError(wire.CodeUnauthorized, "operator delegation refused: the calling node belongs to another operator")
	same := wire.Caller{Transport: "quic", PeerID: "p", SameOperator: true,
		MemberRefusal: wire.NewError(wire.CodeUnauthorized, "membership credential expired")}
	if r := f.eng.Execute(context.Background(), tokenCall(), same); r.Error != nil {
		t.Fatalf("same-operator caller refused: %+v", r.Error)
	}
	r := f.eng.Execute(context.Background(), tokenCall(), wire.Caller{Transport: "quic", PeerID: "p", MemberRefusal: refused})
	wantError(t, r, wire.CodeUnauthorized, wire.StatusError)
	if r.Error.Message != refused.Message {
		t.Fatalf("refusal %q, want the transport's", r.Error.Message)
	}
}
