package mesh

import (
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Persistent task streams (docs/spec-decisions.md, "Mesh: persistent task
// streams"). Opening a libp2p stream per call costs a stream set-up, a
// handler goroutine and the multistream header on both sides; a stream
// reused for the next call to the same peer costs none of it. A caller
// asks for TaskProtocolPersist beside TaskProtocol, and libp2p picks the
// first the peer's identify listed, so an older node serving 1.0.0 alone
// gets one stream per call as before. On 1.1.0 the exchange is 1.0.0's
// (optional HEADERS, CALL, then RESPONSE or CLOSE), but after the RESPONSE
// of a buffered call (no lifecycle profile, no resume) neither side closes:
// the server reads the next request on the same stream, up to its idle
// timeout. Every request carries its own HEADERS, verified on its own, so
// authorisation stays per call and bound to the stream's authenticated
// peer; nothing is inherited from an earlier request. Streamed calls,
// cancels and refusals end the stream as on 1.0.0.
//
// A server that idles out or shuts down ends the stream with a FIN, never a
// reset, and only while no request is being read: a caller whose CALL on a
// reused stream meets that FIN before any answer byte (or whose write
// fails) knows the CALL was never read, and sends it on a fresh stream.
// Any other failure is the attempt's, as on 1.0.0: the CALL is not re-sent
// on this peer outside Call's retry policy.

const (
	// serverStreamIdle is how long a served persistent stream waits for
	// the next request.
	serverStreamIdle = 60 * time.Second
	// clientStreamIdle is how long a caller keeps an idle stream: well
	// below serverStreamIdle, so a server rarely closes one under a CALL.
	clientStreamIdle = 30 * time.Second
	// idlePerPeer bounds the idle streams kept to one peer (the buffered
	// calls in flight to it at once, in steady state).
	idlePerPeer = 32
	// idleTotal bounds the idle streams kept to all peers.
	idleTotal = 512
	// idleServedMax bounds the idle persistent streams a server keeps open
	// (a quarter of its task stream budget); past it a stream is ended
	// right after its RESPONSE.
	idleServedMax = taskStreamsTotal / 4
)

// idleStream is a stream back in the pool since at.
type idleStream struct {
	s  network.Stream
	at time.Time
}

// streamPool holds this node's idle persistent task streams per peer,
// newest last. An entry lives while the peer has an idle stream.
type streamPool struct {
	mu     sync.Mutex
	idle   map[peer.ID][]idleStream
	total  int
	closed bool
}

// get takes the newest idle stream to p that is still open, closing the
// ones that idled too long or died; nil when there is none.
func (sp *streamPool) get(p peer.ID, now time.Time) network.Stream {
	var drop []network.Stream
	defer func() {
		for _, s := range drop {
			_ = s.Close()
		}
	}()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for list := sp.idle[p]; len(list) > 0; list = sp.idle[p] {
		e := list[len(list)-1]
		sp.take(p, list)
		if now.Sub(e.at) < clientStreamIdle && streamAlive(e.s) {
			return e.s
		}
		drop = append(drop, e.s)
	}
	return nil
}

// take removes the last entry of list, p's idle streams. sp.mu is held.
func (sp *streamPool) take(p peer.ID, list []idleStream) {
	list[len(list)-1] = idleStream{}
	if list = list[:len(list)-1]; len(list) == 0 {
		delete(sp.idle, p)
	} else {
		sp.idle[p] = list
	}
	sp.total--
}

// put returns s, a persistent stream to p whose exchange ended cleanly,
// to the pool; it is closed instead when the pool is full or closed.
func (sp *streamPool) put(p peer.ID, s network.Stream, now time.Time) {
	sp.mu.Lock()
	if sp.closed || sp.total >= idleTotal || len(sp.idle[p]) >= idlePerPeer {
		sp.mu.Unlock()
		_ = s.Close()
		return
	}
	if sp.idle == nil {
		sp.idle = make(map[peer.ID][]idleStream)
	}
	sp.idle[p] = append(sp.idle[p], idleStream{s: s, at: now})
	sp.total++
	sp.mu.Unlock()
}

// close closes every idle stream; later puts close theirs.
func (sp *streamPool) close() {
	sp.mu.Lock()
	idle := sp.idle
	sp.idle, sp.total, sp.closed = nil, 0, true
	sp.mu.Unlock()
	for _, list := range idle {
		for _, e := range list {
			_ = e.s.Close()
		}
	}
}

// streamAlive reports whether an idle stream's connection is still up. A
// stream the peer ended is found out by the CALL itself (errStaleStream):
// a read probe cannot see it, as quic-go reports a passed deadline before
// a FIN already received.
func streamAlive(s network.Stream) bool { return !s.Conn().IsClosed() }

// errStaleStream marks a CALL on a reused stream that the server never
// read: the write failed, or the server's FIN came before any answer.
var errStaleStream = errors.New("mesh: reused task stream was closed by the peer")

// streamIdle is the served persistent streams' idle timeout.
func (m *Mesh) streamIdle() time.Duration {
	if d := time.Duration(m.idleOverride.Load()); d > 0 {
		return d
	}
	return serverStreamIdle
}

// maxIdleServed is idleServedMax, or the test override (negative: none).
func (m *Mesh) maxIdleServed() int64 {
	if n := m.idleServedOverride.Load(); n != 0 {
		return max(n, 0)
	}
	return idleServedMax
}
