package httpapi

import (
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
)

// newLimiter is the per-IP or per-Origin limit of perMin requests a
// minute with bursts of burst: an httpx.Limiter allowing burst requests
// in any window of burst/perMin minutes (the same sustained rate, the
// same largest burst). nil when perMin is 0 (limit disabled).
func newLimiter(perMin, burst, maxKeys int) *httpx.Limiter {
	if perMin <= 0 || burst <= 0 {
		return nil
	}
	return httpx.NewLimiter(burst, time.Duration(burst)*time.Minute/time.Duration(perMin), maxKeys)
}

// ipKey is the rate-limit key for a source address (httpx.SourceKey: the
// address for IPv4, the /64 for IPv6). loopback reports whether the caller
// is on this host.
// The usual "ip:port" is parsed once; anything else takes SourceKey's
// general path.
func ipKey(remoteAddr string) (key string, loopback bool) {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		a := ap.Addr()
		return httpx.AddrKey(a), a.Unmap().IsLoopback()
	}
	key = httpx.SourceKey(remoteAddr)
	a, err := netip.ParseAddr(key)
	return key, err == nil && a.IsLoopback()
}

// maxOriginKey bounds an Origin used as a key; real origins are short.
const maxOriginKey = 256
