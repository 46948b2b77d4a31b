package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
)

// Replica response signing (iicp-federated-directory.md §6.5, DIR-FED-20):
// a replica signs every discovery answer, a client verifies it under the
// replica's DID key. The rule lives here once; the replica signs with it
// (federation) and nodes verify with it (dirclient).

// CanonicalQuery is §6.5 query_canonical: parameters sorted by name,
// URL-encoded, no leading '?'. Values of a repeated name keep their order
// (url.Values.Encode), so client and replica agree for any query a client
// can send; an unparseable query is used as sent.
func CanonicalQuery(rawQuery string) string {
	v, err := url.ParseQuery(rawQuery)
	if err != nil {
		return rawQuery
	}
	return v.Encode()
}

// ReplicaResponseDigest is
// SHA256_bin(METHOD:path:query_canonical:snapshot_seq:SHA256_hex(body)).
func ReplicaResponseDigest(method, path, rawQuery string, snapshotSeq int64, body []byte) [32]byte {
	bh := sha256.Sum256(body)
	in := strings.ToUpper(method) + ":" + path + ":" + CanonicalQuery(rawQuery) + ":" +
		strconv.FormatInt(snapshotSeq, 10) + ":" + hex.EncodeToString(bh[:])
	return sha256.Sum256([]byte(in))
}

// SignReplicaResponse returns the hex X-IICP-Replica-Sig value.
func SignReplicaResponse(key ed25519.PrivateKey, method, path, rawQuery string, snapshotSeq int64, body []byte) string {
	d := ReplicaResponseDigest(method, path, rawQuery, snapshotSeq, body)
	return hex.EncodeToString(ed25519.Sign(key, d[:]))
}

// VerifyReplicaResponse reports whether sigHex (X-IICP-Replica-Sig) signs
// the answer under pub, with seqHeader the received X-IICP-Snapshot-Seq.
func VerifyReplicaResponse(pub ed25519.PublicKey, method, path, rawQuery, seqHeader, sigHex string, body []byte) bool {
	seq, err := strconv.ParseInt(seqHeader, 10, 64)
	if err != nil || seq < 0 || len(pub) != ed25519.PublicKeySize {
		return false
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	d := ReplicaResponseDigest(method, path, rawQuery, seq, body)
	return ed25519.Verify(pub, d[:], sig)
}
