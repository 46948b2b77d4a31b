package federation

import (
	"crypto/ed25519"
	"errors"

	"github.com/meshnode/meshnode/wire"
)

// Replica response signing headers (S.13 §6.5, DIR-FED-20).
const (
	HeaderReplicaSig  = "X-IICP-Replica-Sig"
	HeaderReplicaDID  = "X-IICP-Replica-DID"
	HeaderSnapshotSeq = "X-IICP-Snapshot-Seq"
)

// CanonicalQuery is §6.5 query_canonical (wire.CanonicalQuery).
func CanonicalQuery(rawQuery string) string { return wire.CanonicalQuery(rawQuery) }

// ResponseDigest is the signed digest (wire.ReplicaResponseDigest).
func ResponseDigest(method, path, rawQuery string, snapshotSeq int64, body []byte) [32]byte {
	return wire.ReplicaResponseDigest(method, path, rawQuery, snapshotSeq, body)
}

// SignResponse returns the hex X-IICP-Replica-Sig value.
func SignResponse(key ed25519.PrivateKey, method, path, rawQuery string, snapshotSeq int64, body []byte) string {
	return wire.SignReplicaResponse(key, method, path, rawQuery, snapshotSeq, body)
}

// ErrReplicaSignature is IICP-SEC-REPLICA-01: the response is not what the
// replica signed; its nodes must not be used.
var ErrReplicaSignature = errors.New("IICP-SEC-REPLICA-01: replica response signature invalid")

// VerifyResponse checks a replica's discovery response (client side of
// DIR-FED-20): pub is the replica's DID key, seqHeader and sigHex the
// received X-IICP-Snapshot-Seq and X-IICP-Replica-Sig.
func VerifyResponse(pub ed25519.PublicKey, method, path, rawQuery, seqHeader, sigHex string, body []byte) error {
	if !wire.VerifyReplicaResponse(pub, method, path, rawQuery, seqHeader, sigHex, body) {
		return ErrReplicaSignature
	}
	return nil
}
