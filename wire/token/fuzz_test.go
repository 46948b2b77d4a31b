package token

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// FuzzVerifyConsumer: any header value is refused or accepted without
// panicking, and an accepted token satisfies every check.
func FuzzVerifyConsumer(f *testing.F) {
	key := testKey(5)
	now := time.Unix(1800000000, 0)
	good, _ := SignConsumer(key, claimsAt(now, nodeA, chat))
	f.Add(good)
	f.Add("a.b")
	f.Add("")
	keys := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := VerifyConsumer(keys, s, ConsumerCheck{Audience: nodeA, Intent: chat, Subject: callerC}, now)
		if err == nil && (c.Aud != nodeA || c.Sub != callerC || c.Exp-c.IAT > int64(MaxConsumerLifetime/time.Second)) {
			t.Fatalf("accepted a token failing its checks: %+v", c)
		}
	})
}

// FuzzOpen: untrusted route tickets never panic.
func FuzzOpen(f *testing.F) {
	key := testKey(6)
	tok, _ := Sign(key, DomainRouteTicket, map[string]int{"v": 1})
	f.Add(tok)
	f.Add("a.b")
	keys := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	f.Fuzz(func(t *testing.T, s string) {
		var out RouteTicket
		_ = Open(keys, DomainRouteTicket, s, &out)
	})
}
