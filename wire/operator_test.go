package wire

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// testOperatorKey is deterministic so the canonical-bytes vector is fixed.
func testOperatorKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

const opNodeID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

// TestDIR_OPID_01_DelegationCanonicalBytes: the signed bytes are
// {"node_id":…,"not_after":…,"operator_pub":…}, keys sorted, no
// whitespace, slashes unescaped (iicp-dir.md §3.1).
func TestDIR_OPID_01_DelegationCanonicalBytes(t *testing.T) {
	d := OperatorDelegation{NodeID: opNodeID, OperatorPub: "ab/c+d==", NotAfter: 1893456000}
	want := `{"node_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","not_after":1893456000,"operator_pub":"ab/c+d=="}`
	if got := string(DelegationBytes(&d)); got != want {
		t.Fatalf("canonical bytes\n got %s\nwant %s", got, want)
	}
	r := OperatorRename{OperatorPub: "ab/c", DisplayName: "Zoë & <Co>", TS: 7}
	if got := string(RenameBytes(&r)); got != `{"display_name":"Zoë & <Co>","operator_pub":"ab/c","ts":7}` {
		t.Fatalf("rename bytes %s", got)
	}
}

// TestDIR_OPID_01_DelegationVerifies: a delegation signed with the
// operator key verifies offline for its node until not_after, whatever
// base64 alphabet and padding carry the key and signature; forged,
// expired, replayed-for-another-node and malformed ones do not, each with
// its own reason.
func TestDIR_OPID_01_DelegationVerifies(t *testing.T) {
	priv := testOperatorKey()
	const now = 1_800_000_000
	d := SignDelegation(priv, strings.ToUpper(opNodeID), now+3600)
	pub, err := VerifyDelegation(&d, opNodeID, now)
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("valid delegation: %v", err)
	}
	raw, _ := base64.StdEncoding.DecodeString(d.Sig)
	rawPub, _ := base64.StdEncoding.DecodeString(d.OperatorPub)
	urlSafe := d
	urlSafe.Sig = base64.RawURLEncoding.EncodeToString(raw)
	if _, err := VerifyDelegation(&urlSafe, opNodeID, now); err != nil {
		t.Fatalf("URL-safe unpadded signature: %v", err)
	}

	flipped := append([]byte(nil), raw...)
	flipped[10] ^= 1
	other := SignDelegation(ed25519.NewKeyFromSeed(make([]byte, 32)), opNodeID, now+3600)
	cases := []struct {
		name string
		mod  func(*OperatorDelegation)
		node string
		at   int64
		want error
	}{
		{"forged signature", func(x *OperatorDelegation) { x.Sig = base64.StdEncoding.EncodeToString(flipped) }, opNodeID, now, ErrDelegationSignature},
		{"key swapped for another operator's", func(x *OperatorDelegation) { x.OperatorPub = other.OperatorPub }, opNodeID, now, ErrDelegationSignature},
		{"not_after raised", func(x *OperatorDelegation) { x.NotAfter += 86400 }, opNodeID, now, ErrDelegationSignature},
		{"expired", func(*OperatorDelegation) {}, opNodeID, now + 3600, ErrDelegationExpired},
		{"replayed for another node", func(*OperatorDelegation) {}, "0b8e6d5c-1f2a-4c3b-8d4e-5f6a7b8c9d0e", now, ErrDelegationNode},
		{"short key", func(x *OperatorDelegation) { x.OperatorPub = base64.StdEncoding.EncodeToString(rawPub[:31]) }, opNodeID, now, ErrDelegationMalformed},
		{"not base64", func(x *OperatorDelegation) { x.Sig = "!!!" }, opNodeID, now, ErrDelegationMalformed},
		{"oversize", func(x *OperatorDelegation) { x.Sig = strings.Repeat("A", MaxDelegationField+1) }, opNodeID, now, ErrDelegationMalformed},
	}
	for _, c := range cases {
		x := d
		c.mod(&x)
		if _, err := VerifyDelegation(&x, c.node, c.at); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := VerifyDelegation(nil, opNodeID, now); !errors.Is(err, ErrDelegationMalformed) {
		t.Errorf("nil delegation: %v", err)
	}
}

// TestOperatorRenameVerifies: a rename verifies against its operator key;
// a changed name, a forged signature and bad display names are refused.
func TestOperatorRenameVerifies(t *testing.T) {
	priv := testOperatorKey()
	r := SignRename(priv, "Acme Labs", 42)
	if pub, e := VerifyRename(&r); e != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("valid rename: %v", e)
	}
	changed := r
	changed.DisplayName = "Evil Labs"
	if _, e := VerifyRename(&changed); e == nil || e.Code != CodeUnauthorized {
		t.Fatalf("renamed after signing: %v", e)
	}
	for _, bad := range []string{"", "   ", strings.Repeat("x", MaxDisplayName+1), "a\nb", "a\u2028b"} {
		x := SignRename(priv, bad, 42)
		if _, e := VerifyRename(&x); e == nil || e.Field != "display_name" {
			t.Errorf("display name %q: %v", bad, e)
		}
	}
	if fp := OperatorFingerprint(priv.Public().(ed25519.PublicKey)); len(fp) != 16 {
		t.Fatalf("fingerprint %q", fp)
	}
}

// FuzzVerifyDelegation: any operator_delegation JSON gets a verdict
// without panicking and never verifies without the operator's signature.
func FuzzVerifyDelegation(f *testing.F) {
	d := SignDelegation(testOperatorKey(), opNodeID, 1_900_000_000)
	valid, _ := json.Marshal(d)
	f.Add(valid)
	f.Add([]byte(`{"node_id":"","operator_pub":"-_-_","not_after":-1,"sig":"===="}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var x *OperatorDelegation
		if json.Unmarshal(raw, &x) != nil {
			return
		}
		pub, err := VerifyDelegation(x, opNodeID, 1_800_000_000)
		// Only the one signed tuple can verify, whatever encoding carries it.
		if err == nil && (!pub.Equal(testOperatorKey().Public()) || x.NotAfter != 1_900_000_000) {
			t.Fatalf("verified a delegation the operator never signed: %+v", x)
		}
	})
}

// FuzzVerifyRename: any rename body gets a verdict without panicking and
// verifies only for the one name the operator signed.
func FuzzVerifyRename(f *testing.F) {
	r := SignRename(testOperatorKey(), "Acme Labs", 42)
	valid, _ := json.Marshal(r)
	f.Add(valid)
	f.Add([]byte(`{"operator_pub":"","display_name":"\u0000","ts":-1,"sig":"@@"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var x OperatorRename
		if json.Unmarshal(raw, &x) != nil {
			return
		}
		if _, e := VerifyRename(&x); e == nil && (x.DisplayName != "Acme Labs" || x.TS != 42) {
			t.Fatalf("verified a rename the operator never signed: %+v", x)
		}
	})
}

// FuzzDecodeHeartbeatJSON: any HEARTBEAT body (metrics batches included)
// decodes into a valid heartbeat or a structured validation error.
func FuzzDecodeHeartbeatJSON(f *testing.F) {
	f.Add([]byte(`{"node_id":"` + opNodeID + `","metrics":{"tasks_success":3,"tasks_failed":1,"avg_latency_ms":12.5},"metrics_batch_id":"mb-1"}`))
	f.Add([]byte(`{"node_id":"` + opNodeID + `","metrics":{"tasks_success":-1},"metrics_batch_id":""}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, e := DecodeHeartbeatJSON(raw)
		if e == nil && (h == nil || ValidateHeartbeat(h) != nil) {
			t.Fatalf("accepted an invalid heartbeat: %s", raw)
		}
		if e != nil && e.Code == "" {
			t.Fatalf("unstructured error for %q", raw)
		}
	})
}
