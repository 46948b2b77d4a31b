package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/spectest"
)

type routeFixture struct {
	Domain       string `json:"domain"`
	PublicKeyHex string `json:"public_key_hex"`
	Valid        struct {
		Token  string      `json:"token"`
		Claims RouteTicket `json:"claims"`
	} `json:"valid"`
	WrongAudience struct {
		Token string `json:"token"`
	} `json:"wrong_audience"`
	Vectors []struct {
		Name     string `json:"name"`
		Token    string `json:"token"`
		Issuer   string `json:"issuer"`
		NodeID   string `json:"node_id"`
		Intent   string `json:"intent"`
		NowS     int64  `json:"now_s"`
		Expected string `json:"expected"`
	} `json:"validation_vectors"`
}

func loadFixture(t *testing.T) routeFixture {
	t.Helper()
	raw, err := os.ReadFile(spectest.Path(t, "fixtures", "profiles", "dispatch-route-ticket-v1.json"))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	var f routeFixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("decoding fixture: %v", err)
	}
	return f
}

// TestDIR_DISPATCH_TicketFixtureVectors runs every validation vector of
// dispatch-route-ticket-v1.json through VerifyRouteTicket.
func TestDIR_DISPATCH_TicketFixtureVectors(t *testing.T) {
	f := loadFixture(t)
	if f.Domain != DomainRouteTicket {
		t.Fatalf("fixture domain %q != %q", f.Domain, DomainRouteTicket)
	}
	pub, err := hex.DecodeString(f.PublicKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			tok := v.Token
			switch {
			case tok == "valid":
				tok = f.Valid.Token
			case tok == "wrong_audience":
				tok = f.WrongAudience.Token
			case strings.HasPrefix(tok, "valid+"):
				// "valid+0": the valid token with a suffix that breaks the signature.
				tok = f.Valid.Token + strings.TrimPrefix(tok, "valid+")
			}
			c, err := VerifyRouteTicket([]ed25519.PublicKey{pub}, tok, v.Issuer, v.NodeID, v.Intent, time.Unix(v.NowS, 0))
			got := "valid"
			if err != nil {
				got = "rejected"
			}
			if got != v.Expected {
				t.Fatalf("got %s (err %v), want %s", got, err, v.Expected)
			}
			if got == "valid" && *c != f.Valid.Claims {
				t.Fatalf("claims %+v != fixture %+v", *c, f.Valid.Claims)
			}
		})
	}
}

// TestDIR_DISPATCH_TicketEncodingMatchesFixture checks our claim encoding is
// byte-identical to the reference payload, so a ticket we sign with the
// fixture's key would equal the fixture token.
func TestDIR_DISPATCH_TicketEncodingMatchesFixture(t *testing.T) {
	f := loadFixture(t)
	tok, err := SignRouteTicket(ed25519.NewKeyFromSeed(make([]byte, 32)), f.Valid.Claims)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := strings.Cut(tok, ".")
	want, _, _ := strings.Cut(f.Valid.Token, ".")
	if got != want {
		t.Fatalf("payload encoding differs:\n got %s\nwant %s", got, want)
	}
}

func TestRouteTicketRoundTripAndTamper(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := []ed25519.PublicKey{pub}
	c := RouteTicket{V: 1, Typ: TicketType, Iss: "https://d.example", Aud: TicketAudience,
		JTI: "0123456789abcdef01234567", NodeID: "n1", Intent: "urn:iicp:intent:llm:chat:v1", IAT: 10, Exp: 100}
	tok, err := SignRouteTicket(priv, c)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s int64) time.Time { return time.Unix(s, 0) }
	if _, err := VerifyRouteTicket(keys, tok, c.Iss, c.NodeID, c.Intent, at(50)); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// One domain per kind: a consumer-token verifier never accepts a ticket.
	if _, err := VerifyConsumer(keys, tok, ConsumerCheck{Audience: TicketAudience, Intent: c.Intent}, at(50)); !errors.Is(err, ErrSignature) {
		t.Fatalf("cross-domain accepted: %v", err)
	}
	cases := map[string]string{
		"empty":       "",
		"no dot":      "abc",
		"two dots":    tok + ".x",
		"bad hex":     strings.Split(tok, ".")[0] + ".zz",
		"short sig":   strings.Split(tok, ".")[0] + ".abcd",
		"bad base64":  "@@@." + strings.Split(tok, ".")[1],
		"flipped sig": tok[:len(tok)-1] + flip(tok[len(tok)-1]),
		"huge":        strings.Repeat("a", MaxLen+1),
	}
	for name, bad := range cases {
		if _, err := VerifyRouteTicket(keys, bad, c.Iss, c.NodeID, c.Intent, at(50)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := VerifyRouteTicket(keys, tok, c.Iss, c.NodeID, c.Intent, at(100)); !errors.Is(err, ErrExpired) {
		t.Errorf("expiry not enforced: %v", err)
	}
	if _, err := VerifyRouteTicket(nil, tok, c.Iss, c.NodeID, c.Intent, at(50)); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v", err)
	}
}

func flip(b byte) string {
	if b == '0' {
		return "1"
	}
	return "0"
}
