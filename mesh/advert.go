package mesh

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/fxamacker/cbor/v2"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/wire"
)

// AdvertTopic is the gossip topic of node adverts. Versioned so a future
// incompatible advert format gets its own topic.
const AdvertTopic = "/meshnode/adverts/1.0.0"

// advertVersion is Advert.Version for this format.
const advertVersion = 1

// Structural limits of one advert, checked on every received advert.
const (
	maxAdvertCaps     = 64
	maxAdvertModels   = 64
	maxAdvertAddrs    = 16
	maxAdvertStrLen   = 256
	maxAdvertNodeID   = 128
	maxAdvertRegion   = 64
	maxAdvertJobs     = 1 << 20
	maxAdvertConcurr  = 1 << 20
	advertNestedLevel = 4
)

// Advert is one node advertisement. It travels as integer-keyed CBOR
// inside a pubsub message that libp2p signs with the origin's peer key
// (StrictSign); the validator requires PeerID to equal that signing origin
// and NodeID to be the node_id derived from the origin's key (NodeIDOf),
// so a peer can only ever advertise itself, under its own node_id.
type Advert struct {
	Version       uint8       `cbor:"1,keyasint"`
	NodeID        string      `cbor:"2,keyasint,omitempty"`
	PeerID        string      `cbor:"3,keyasint"`
	Caps          []AdvertCap `cbor:"4,keyasint,omitempty"`
	Load          float64     `cbor:"5,keyasint"`
	ActiveJobs    int         `cbor:"6,keyasint"`
	MaxConcurrent int         `cbor:"7,keyasint"`
	Addrs         []string    `cbor:"8,keyasint,omitempty"`
	// Seq increases with every advert of one peer; (peer, seq) newer supersedes older.
	Seq uint64 `cbor:"9,keyasint"`
	// TimestampMs is the sender's wall clock (Unix milliseconds) at publish.
	TimestampMs int64  `cbor:"10,keyasint"`
	Region      string `cbor:"11,keyasint,omitempty"`
	Available   bool   `cbor:"12,keyasint"`
	// Operator is the node's operator delegation (operator.go): a claim
	// the validator verifies against NodeID, dropping it when it fails.
	Operator *delegationMsg `cbor:"13,keyasint,omitempty"`
	// operatorKey is the operator key Operator proved (standard base64),
	// set by the validator; never encoded.
	operatorKey string
}

// AdvertCap is one advertised capability: an intent and its models.
type AdvertCap struct {
	Intent string   `cbor:"1,keyasint"`
	Models []string `cbor:"2,keyasint,omitempty"`
}

var (
	cborEnc cbor.EncMode
	cborDec cbor.DecMode
)

func init() {
	var err error
	cborEnc, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("mesh: advert encoder options: %v", err))
	}
	cborDec, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  advertNestedLevel,
		MaxArrayElements: 256,
		MaxMapPairs:      32,
		NaN:              cbor.NaNDecodeForbidden,
		Inf:              cbor.InfDecodeForbidden,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("mesh: advert decoder options: %v", err))
	}
}

// errAdvertMalformed marks an advert that fails decoding or structural checks.
var errAdvertMalformed = errors.New("malformed advert")

func encodeAdvert(a *Advert) ([]byte, error) {
	b, err := cborEnc.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encoding advert: %w", err)
	}
	return b, nil
}

// decodeAdvert decodes and structurally checks one advert.
func decodeAdvert(b []byte) (*Advert, error) {
	var a Advert
	if err := cborDec.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%w: decoding: %w", errAdvertMalformed, err)
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	return &a, nil
}

// validIntent reports whether s is an intent URN (iicp-semantics.md §1.1).
func validIntent(s string) bool {
	return len(s) <= maxAdvertStrLen && wire.ValidIntent(s)
}

func (a *Advert) check() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", errAdvertMalformed, what) }
	switch {
	case a.Version != advertVersion:
		return bad("version")
	case len(a.NodeID) > maxAdvertNodeID, len(a.Region) > maxAdvertRegion:
		return bad("node_id or region length")
	case len(a.Caps) > maxAdvertCaps, len(a.Addrs) > maxAdvertAddrs:
		return bad("too many caps or addrs")
	case math.IsNaN(a.Load) || a.Load < 0 || a.Load > 1:
		return bad("load outside [0,1]")
	case a.ActiveJobs < 0 || a.ActiveJobs > maxAdvertJobs:
		return bad("active_jobs")
	case a.MaxConcurrent < 0 || a.MaxConcurrent > maxAdvertConcurr:
		return bad("max_concurrent")
	case a.Seq == 0 || a.TimestampMs <= 0:
		return bad("seq or timestamp")
	case a.Operator != nil && a.Operator.tooLong():
		return bad("operator delegation length")
	}
	if _, err := peer.Decode(a.PeerID); err != nil {
		return bad("peer_id")
	}
	for _, c := range a.Caps {
		if !validIntent(c.Intent) || len(c.Models) > maxAdvertModels {
			return bad("capability")
		}
		for _, m := range c.Models {
			if m == "" || len(m) > maxAdvertStrLen {
				return bad("model")
			}
		}
	}
	for _, s := range a.Addrs {
		if len(s) > maxAdvertStrLen {
			return bad("addr length")
		}
		if _, err := ma.NewMultiaddr(s); err != nil {
			return bad("addr")
		}
	}
	return nil
}

// checkOperator keeps the advert's operator delegation only when it
// verifies for the advert's node_id (already bound to the signer's key):
// then the peer is known to belong to that operator. A failing one is
// dropped and counted, the advert itself stays (the delegation may have
// just expired).
func (v *advertValidator) checkOperator(a *Advert, now time.Time) {
	if a.Operator == nil {
		return
	}
	key, err := wire.VerifyDelegation(a.Operator.wire(), a.NodeID, now.Unix())
	if err != nil {
		v.stats.count("advert_operator_invalid")
		a.Operator = nil
		return
	}
	a.operatorKey = base64.StdEncoding.EncodeToString(key)
}

// Reject and ignore reasons, counted in Stats.
const (
	reasonOversized   = "oversized"
	reasonUnsigned    = "unsigned"
	reasonMalformed   = "malformed"
	reasonWrongOrigin = "wrong_origin"
	reasonNodeID      = "node_id_mismatch"
	reasonRateLimited = "rate_limited"
	reasonStale       = "stale"
	reasonFuture      = "future"
)

// advertValidator is the topic validator. It rejects what no honest peer
// sends (penalising the forwarder in gossipsub scoring) and ignores what an
// honest peer may legitimately relay late or often.
type advertValidator struct {
	maxBytes int
	ttl      time.Duration
	skew     time.Duration
	now      func() time.Time
	table    *PeerTable
	limiter  *rateLimiter
	stats    *stats
}

func (v *advertValidator) validate(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	a, reason, res := v.check(msg)
	if res != pubsub.ValidationAccept {
		v.stats.count(reason)
		return res
	}
	msg.ValidatorData = a
	return pubsub.ValidationAccept
}

func (v *advertValidator) check(msg *pubsub.Message) (*Advert, string, pubsub.ValidationResult) {
	if len(msg.GetData()) > v.maxBytes {
		return nil, reasonOversized, pubsub.ValidationReject
	}
	// StrictSign already refuses unsigned messages; checking again keeps the
	// origin check below sound should the pubsub policy ever be loosened.
	if len(msg.GetSignature()) == 0 || len(msg.GetFrom()) == 0 {
		return nil, reasonUnsigned, pubsub.ValidationReject
	}
	a, err := decodeAdvert(msg.GetData())
	if err != nil {
		return nil, reasonMalformed, pubsub.ValidationReject
	}
	origin := msg.GetFrom()
	if a.PeerID != origin.String() {
		return nil, reasonWrongOrigin, pubsub.ValidationReject
	}
	// The node_id is a claim until it matches the signer's key: a peer
	// advertising another node's node_id would otherwise receive the tasks
	// (and consumer tokens) meant for that node.
	if checkNodeID(origin, a.NodeID) != nil {
		return nil, reasonNodeID, pubsub.ValidationReject
	}
	now := v.now()
	if !msg.Local && !v.limiter.allow(origin, now) {
		return nil, reasonRateLimited, pubsub.ValidationIgnore
	}
	ts := time.UnixMilli(a.TimestampMs)
	if ts.Before(now.Add(-v.ttl)) {
		return nil, reasonStale, pubsub.ValidationIgnore
	}
	if ts.After(now.Add(v.skew)) {
		return nil, reasonFuture, pubsub.ValidationIgnore
	}
	if seq, ok := v.table.advertSeq(origin); ok && a.Seq <= seq {
		return nil, reasonStale, pubsub.ValidationIgnore
	}
	v.checkOperator(a, now)
	return a, "", pubsub.ValidationAccept
}
