package federation

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Replica response signing headers (S.13 §6.5, DIR-FED-20).
const (
	HeaderReplicaSig  = "X-IICP-Replica-Sig"
	HeaderReplicaDID  = "X-IICP-Replica-DID"
	HeaderSnapshotSeq = "X-IICP-Snapshot-Seq"
)

// CanonicalQuery is §6.5 query_canonical: parameters sorted by name,
// URL-encoded, no leading '?'. Values of a repeated name keep their order
// (url.Values.Encode), so client and replica agree for any query a
// client can send.
func CanonicalQuery(rawQuery string) string {
	v, err := url.ParseQuery(rawQuery)
	if err != nil {
		return rawQuery // unparseable: sign/verify the bytes as sent
	}
	return v.Encode()
}

// ResponseDigest is SHA256_bin(METHOD:path:query_canonical:snapshot_seq:SHA256_hex(body)).
func ResponseDigest(method, path, rawQuery string, snapshotSeq int64, body []byte) [32]byte {
	bh := sha256.Sum256(body)
	in := strings.ToUpper(method) + ":" + path + ":" + CanonicalQuery(rawQuery) + ":" +
		strconv.FormatInt(snapshotSeq, 10) + ":" + hex.EncodeToString(bh[:])
	return sha256.Sum256([]byte(in))
}

// SignResponse returns the hex X-IICP-Replica-Sig value.
func SignResponse(key ed25519.PrivateKey, method, path, rawQuery string, snapshotSeq int64, body []byte) string {
	d := ResponseDigest(method, path, rawQuery, snapshotSeq, body)
	return hex.EncodeToString(ed25519.Sign(key, d[:]))
}

// ErrReplicaSignature is IICP-SEC-REPLICA-01: the response is not what the
// replica signed; its nodes must not be used.
var ErrReplicaSignature = errors.New("IICP-SEC-REPLICA-01: replica response signature invalid")

// VerifyResponse checks a replica's discovery response (client side of
// DIR-FED-20): pub is the replica's DID key, seqHeader and sigHex the
// received X-IICP-Snapshot-Seq and X-IICP-Replica-Sig.
func VerifyResponse(pub ed25519.PublicKey, method, path, rawQuery, seqHeader, sigHex string, body []byte) error {
	seq, err := strconv.ParseInt(seqHeader, 10, 64)
	if err != nil || seq < 0 || len(pub) != ed25519.PublicKeySize {
		return ErrReplicaSignature
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return ErrReplicaSignature
	}
	d := ResponseDigest(method, path, rawQuery, seq, body)
	if !ed25519.Verify(pub, d[:], sig) {
		return ErrReplicaSignature
	}
	return nil
}
