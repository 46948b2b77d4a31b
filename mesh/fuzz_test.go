package mesh

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzDecodeAdvert: any bytes either decode to an advert that passes its
// own structural checks or fail cleanly; never a panic.
func FuzzDecodeAdvert(f *testing.F) {
	b, err := encodeAdvert(validAdvert(randomPeer(f), 1, time.Unix(1_700_000_000, 0)))
	if err != nil {
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
