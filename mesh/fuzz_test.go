package mesh

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// FuzzDecodeAdvert: any bytes either decode to an advert that passes its
// own structural checks or fail cleanly; never a panic.
func FuzzDecodeAdvert(f *testing.F) {
	b, err := encodeAdvert(validAdvert(randomPeer(f), 1, time.Unix(1_700_000_000, 0)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	withOp := validAdvert(randomPeer(f), 2, time.Unix(1_700_000_000, 0))
	withOp.Operator = &delegationMsg{NodeID: withOp.NodeID, OperatorPub: "AAAA", NotAfter: 1, Sig: "AAAA"}
	if b, err = encodeAdvert(withOp); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := decodeAdvert(data)
		if err == nil && a.check() != nil {
			t.Fatal("decoded advert fails its own check")
		}
	})
}

// FuzzParseP2PExtension: untrusted directory extensions never panic and
// a parsed result always has a peer ID and at most 16 addresses.
func FuzzParseP2PExtension(f *testing.F) {
	f.Add([]byte(`{"peer_id":"12D3KooWAT18QzuMawPvHbuUkqewKEHkEqLPbJcoEiW7TSFSpCVe","addrs":["/ip4/1.2.3.4/udp/1/quic-v1"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parseP2PExtension(json.RawMessage(data))
		if err == nil && (info.ID == "" || len(info.Addrs) == 0 || len(info.Addrs) > maxExtAddrs) {
			t.Fatalf("bad parse result %v", info)
		}
		if err != nil {
			return
		}
		// The bound parser accepts exactly the peer's own node_id.
		own, _ := NodeIDOf(info.ID)
		if _, err := ParseP2PExtension("forged", json.RawMessage(data)); err == nil {
			t.Fatal("a node_id that is not the key's was accepted")
		}
		if _, err := ParseP2PExtension(own, json.RawMessage(data)); err != nil && own != "" {
			t.Fatalf("own node_id refused: %v", err)
		}
	})
}

// FuzzOperatorHeaders: any HEADERS payload either fails to decode or, with
// an operator delegation, gets a verdict: never a panic, and only a
// delegation by the serving node's operator key for the caller's node_id
// is accepted.
func FuzzOperatorHeaders(f *testing.F) {
	_, opKey, _ := ed25519.GenerateKey(nil)
	caller := randomPeer(f)
	callerID, _ := NodeIDOf(caller)
	good := wire.SignDelegation(opKey, callerID, 4_000_000_000)
	for _, hm := range []headersMsg{
		{Operator: newDelegationMsg(&good)},
		{Membership: "x", Operator: &delegationMsg{NodeID: callerID, OperatorPub: "AAAA", NotAfter: 1, Sig: "!!"}},
		{ConsumerToken: "t"},
	} {
		b, err := cborEnc.Marshal(hm)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x03, 0xf6})
	m := &Mesh{now: time.Now}
	m.operator.key = opKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		var hm headersMsg
		if cborDec.Unmarshal(data, &hm) != nil || hm.Operator == nil {
			return
		}
		same, refusal := m.checkOperator(caller, hm.Operator)
		if same == (refusal != nil) {
			t.Fatalf("verdict %v with refusal %v", same, refusal)
		}
		if same {
			if _, err := wire.VerifyDelegation(hm.Operator.wire(), callerID, time.Now().Unix()); err != nil {
				t.Fatalf("accepted a delegation that does not verify: %v", err)
			}
		}
	})
}
