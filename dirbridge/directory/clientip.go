package directory

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/meshnode/meshnode/internal/httpx"
)

// remoteAddr is the raw TCP source address of r.
func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// forwardedAddr applies DIR-ADDR-05's header order: CF-Connecting-IP, then
// the first X-Forwarded-For value. ok is false when neither parses.
func forwardedAddr(r *http.Request) (netip.Addr, bool) {
	if v := strings.TrimSpace(r.Header.Get("CF-Connecting-IP")); v != "" {
		if a, err := netip.ParseAddr(v); err == nil {
			return a.Unmap(), true
		}
	}
	if v := r.Header.Get("X-Forwarded-For"); v != "" {
		first, _, _ := strings.Cut(v, ",")
		if a, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// observedIP is the address recorded and echoed as observed_source_ip
// (DIR-ADDR-01/02/05). It is informational only.
func observedIP(r *http.Request) string {
	if a, ok := forwardedAddr(r); ok {
		return a.String()
	}
	if a := remoteAddr(r); a.IsValid() {
		return a.String()
	}
	return ""
}

// limitKey is the key used for security decisions (rate limits): the raw
// source (IPv4 address, IPv6 /64: httpx.AddrKey), or the forwarded address only when the raw source is a
// configured trusted proxy (DIR-ADDR-05: headers are not trusted for
// security-sensitive decisions otherwise).
func (s *Server) limitKey(r *http.Request) string {
	raw := remoteAddr(r)
	for _, p := range s.trustedProxies {
		if p.Contains(raw) {
			if a, ok := forwardedAddr(r); ok {
				return httpx.AddrKey(a)
			}
			break
		}
	}
	if !raw.IsValid() {
		return "unknown"
	}
	return httpx.AddrKey(raw)
}
