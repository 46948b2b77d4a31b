package mesh

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/internal/breaker"
)

// Circuit states (iicp-semantics.md §7.1), as PeerInfo.Breaker reports them.
const (
	BreakerClosed   = breaker.Closed
	BreakerOpen     = breaker.Open
	BreakerHalfOpen = breaker.HalfOpen
)

// breakers holds one circuit breaker per peer (internal/breaker, the same
// breaker route keeps per target).
type breakers = breaker.Set[peer.ID]

func newBreakers(threshold int, openFor time.Duration) *breakers {
	return breaker.New[peer.ID](threshold, openFor)
}
