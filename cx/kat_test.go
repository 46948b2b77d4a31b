package cx

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// katFile mirrors testdata/kat_v1.json, produced by testdata/gen_kat.py with
// an independent implementation (pyca/cryptography) of §5 and §5a.3.
type katFile struct {
	Request []struct {
		Name          string   `json:"name"`
		NodePrivate   string   `json:"node_private_key"`
		NodePublic    string   `json:"node_public_key"`
		KeyID         string   `json:"key_id"`
		SDKKeyID      string   `json:"sdk_key_id"`
		EphPrivate    string   `json:"ephemeral_private_key"`
		Nonce         string   `json:"nonce"`
		TaskID        string   `json:"task_id"`
		Intent        string   `json:"intent"`
		PayloadJSON   string   `json:"payload_json"`
		SharedHex     string   `json:"shared_secret_hex"`
		RequestKeyHex string   `json:"request_key_hex"`
		Conf          Envelope `json:"iicp_conf"`
	} `json:"request"`
	Response []struct {
		Name         string       `json:"name"`
		SharedHex    string       `json:"shared_secret_hex"`
		TaskID       string       `json:"task_id"`
		ResponseJSON string       `json:"response_json"`
		KeyHex       string       `json:"response_key_hex"`
		Conf         RespEnvelope `json:"iicp_conf_resp"`
	} `json:"response"`
}

func loadKAT(tb testing.TB) katFile {
	tb.Helper()
	data, err := os.ReadFile("testdata/kat_v1.json")
	if err != nil {
		tb.Fatalf("reading vectors: %v", err)
	}
	var k katFile
	if err := json.Unmarshal(data, &k); err != nil {
		tb.Fatalf("parsing vectors: %v", err)
	}
	if len(k.Request) == 0 || len(k.Response) == 0 {
		tb.Fatal("vector file has no vectors")
	}
	return k
}

func mustPriv(tb testing.TB, s string) *ecdh.PrivateKey {
	tb.Helper()
	raw, err := decode(s)
	if err != nil {
		tb.Fatalf("decoding key: %v", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		tb.Fatalf("private key: %v", err)
	}
	return k
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("hex: %v", err)
	}
	return b
}

// TestCX_KAT_RequestSeal: with the vector's fixed ephemeral key and nonce,
// sealing yields exactly the vector's envelope, and both key_id forms match.
func TestCX_KAT_RequestSeal(t *testing.T) {
	for _, v := range loadKAT(t).Request {
		t.Run(v.Name, func(t *testing.T) {
			node := mustPriv(t, v.NodePrivate)
			if got := encode(node.PublicKey().Bytes()); got != v.NodePublic {
				t.Fatalf("public key %s, want %s", got, v.NodePublic)
			}
			if got := KeyID(node.PublicKey()); got != v.KeyID {
				t.Errorf("KeyID = %s, want %s", got, v.KeyID)
			}
			if got := SDKKeyID(node.PublicKey()); got != v.SDKKeyID {
				t.Errorf("SDKKeyID = %s, want %s", got, v.SDKKeyID)
			}
			nonce, _ := decode(v.Nonce)
			k, err := requestKey(mustHex(t, v.SharedHex), nonce, v.TaskID, v.Intent)
			if err != nil || !bytes.Equal(k, mustHex(t, v.RequestKeyHex)) {
				t.Fatalf("request key = %x (%v), want %s", k, err, v.RequestKeyHex)
			}
			env, shared, err := sealRequest(mustPriv(t, v.EphPrivate), node.PublicKey(), nonce, v.KeyID, v.TaskID, v.Intent, []byte(v.PayloadJSON))
			if err != nil {
				t.Fatalf("sealRequest: %v", err)
			}
			if hex.EncodeToString(shared) != v.SharedHex {
				t.Errorf("shared = %x, want %s", shared, v.SharedHex)
			}
			got, _ := json.Marshal(env)
			want, _ := json.Marshal(v.Conf)
			if !bytes.Equal(got, want) {
				t.Errorf("envelope\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestCX_02_KAT_ProviderOpens: a provider holding the vector's node key
// opens the vector body (under either key_id form) into the vector payload.
func TestCX_02_KAT_ProviderOpens(t *testing.T) {
	for _, v := range loadKAT(t).Request {
		for _, kid := range []string{v.KeyID, v.SDKKeyID} {
			t.Run(v.Name+"/"+kid, func(t *testing.T) {
				clk := newFakeClock()
				p := newTestProvider(t, ringWithKey(t, mustPriv(t, v.NodePrivate), clk), clk)
				conf := v.Conf
				conf.RecipientKeyID = kid
				body, _ := json.Marshal(map[string]any{"task_id": v.TaskID, "intent": v.Intent, "iicp_conf": conf, "constraints": map[string]any{"timeout_ms": 1000}})
				o, werr := p.Open(body)
				if werr != nil {
					t.Fatalf("Open: %v", werr)
				}
				var call struct {
					TaskID      string          `json:"task_id"`
					Payload     json.RawMessage `json:"payload"`
					Constraints json.RawMessage `json:"constraints"`
					Conf        json.RawMessage `json:"iicp_conf"`
				}
				if err := json.Unmarshal(o.Call, &call); err != nil {
					t.Fatalf("plain call: %v", err)
				}
				var want bytes.Buffer
				_ = json.Compact(&want, []byte(v.PayloadJSON))
				if !bytes.Equal(call.Payload, want.Bytes()) || call.TaskID != v.TaskID || call.Conf != nil || string(call.Constraints) != `{"timeout_ms":1000}` {
					t.Errorf("plain call = %s", o.Call)
				}
			})
		}
	}
}

// TestCX_KAT_Response: the vector response envelope opens under the vector
// shared secret, and sealing with the vector nonce reproduces it.
func TestCX_KAT_Response(t *testing.T) {
	for _, v := range loadKAT(t).Response {
		t.Run(v.Name, func(t *testing.T) {
			shared := mustHex(t, v.SharedHex)
			plain, err := openResponse(shared, v.TaskID, &v.Conf)
			if err != nil || string(plain) != v.ResponseJSON {
				t.Fatalf("openResponse = %q, %v", plain, err)
			}
			nonce, _ := decode(v.Conf.Nonce)
			env, err := sealResponse(shared, nonce, v.TaskID, []byte(v.ResponseJSON))
			if err != nil || *env != v.Conf {
				t.Fatalf("sealResponse = %+v, %v; want %+v", env, err, v.Conf)
			}
			o := &ResponseOpener{taskID: v.TaskID, shared: shared, required: true}
			body, _ := json.Marshal(sealedResponse{TaskID: v.TaskID, Status: "success", Conf: &v.Conf})
			got, werr := o.Open(body)
			if werr != nil || string(got) != v.ResponseJSON {
				t.Fatalf("ResponseOpener.Open = %q, %v", got, werr)
			}
		})
	}
}
