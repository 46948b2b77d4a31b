package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Gossip push (meshnode's addition to S.13 §5.3's 30 s poll): the seed
// publishes every event it appends; replicas verify and apply it at once,
// and fall back to GET /v1/events for anything gossip lost or reordered.
// Gossip carries the exact signed events of the log, so it needs no trust
// of its own: the validator rejects (and GossipSub penalises the sender of)
// any message that is not a well-formed event signed by the seed key.

// EventTopicPrefix is versioned; the seed DID is appended so replicas of
// different seeds never share a topic.
const EventTopicPrefix = "/iicp/federation/events/1.0.0/"

// maxGossipEventBytes caps one gossip message: an event with the largest
// payload plus its envelope.
const maxGossipEventBytes = MaxPayloadBytes + 4<<10

// EventTopic is the gossip topic of the seed with signer DID did.
func EventTopic(did string) string { return EventTopicPrefix + did }

// validatorFunc is a pubsub topic validator.
type validatorFunc = func(context.Context, peer.ID, *pubsub.Message) pubsub.ValidationResult

// joinEventTopic joins the seed's topic with the default validator (local
// publishes are validated too).
func joinEventTopic(ps *pubsub.PubSub, did string, pub ed25519.PublicKey) (*pubsub.Topic, error) {
	return joinTopicWith(ps, EventTopic(did), func(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if _, err := decodeGossip(msg.Data, did, pub); err != nil {
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	})
}

// gossipMsg is one verified topic message: an event or a liveness digest.
type gossipMsg struct {
	ev   *Event
	live *LivenessDigest
}

// decodeGossip verifies one topic message of either kind. Digests are told
// apart by their fixed leading key; anything else must be an event.
func decodeGossip(b []byte, did string, pub ed25519.PublicKey) (gossipMsg, error) {
	if bytes.HasPrefix(b, livenessPrefix) {
		if len(b) > maxLivenessGossipBytes {
			return gossipMsg{}, &VerifyError{Reason: fmt.Errorf("%w: oversize liveness digest", ErrMalformed)}
		}
		d, err := VerifyLiveness(pub, did, b)
		return gossipMsg{live: d}, err
	}
	ev, err := decodeGossipEvent(b, did, pub)
	return gossipMsg{ev: ev}, err
}

// joinTopicWith registers v (inline: checks are cheap and bounded) and
// joins the topic.
func joinTopicWith(ps *pubsub.PubSub, name string, v validatorFunc) (*pubsub.Topic, error) {
	if err := ps.RegisterTopicValidator(name, v, pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("federation: registering gossip validator: %w", err)
	}
	t, err := ps.Join(name)
	if err != nil {
		_ = ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("federation: joining gossip topic: %w", err)
	}
	return t, nil
}

// decodeGossipEvent decodes and checks one gossiped event without chain
// context: shape, signer and signature.
func decodeGossipEvent(b []byte, did string, pub ed25519.PublicKey) (*Event, error) {
	if len(b) > maxGossipEventBytes {
		return nil, &VerifyError{Reason: fmt.Errorf("%w: oversize gossip message", ErrMalformed)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ev Event
	if err := dec.Decode(&ev); err != nil {
		return nil, &VerifyError{Reason: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	if err := CheckShape(&ev); err != nil {
		return nil, err
	}
	if ev.SignerDID != did {
		return nil, &VerifyError{Seq: ev.Seq, Reason: ErrSigner}
	}
	if err := VerifySignature(pub, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}
