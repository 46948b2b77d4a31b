package httpx

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrNonRoutable marks a destination a server must not fetch on a caller's
// behalf (IICP-E035, iicp-dir.md §3.1 RoutableEndpoint). It wraps a reason
// that is safe to show the caller.
var ErrNonRoutable = errors.New("non-routable endpoint")

// reservedSuffixes are the name suffixes §3.1 / iicp-core.md §7 refuse.
var reservedSuffixes = []string{".local", ".test", ".example", ".invalid", ".lan", ".internal", ".localhost"}

// nonRoutable lists the prefixes refused beside loopback/private/link-local
// (which netip classifies itself): CGNAT, "this network", class E, IPv6
// site-local (deprecated) and the NAT64 local-use prefix (RFC 8215).
var nonRoutable = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("fec0::/10"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// IPv6 transition prefixes that carry an IPv4 address inside.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: IPv4 in the last 32 bits
	sixToFour = netip.MustParsePrefix("2002::/16")    // RFC 3056: IPv4 in bits 16–47
	teredo    = netip.MustParsePrefix("2001::/32")    // RFC 4380: server in bits 32–63, client inverted in the last 32
	v4compat  = netip.MustParsePrefix("::/96")        // deprecated IPv4-compatible (::a.b.c.d)
)

// CheckHost applies the name-level routability rules to a URL host (no
// port): IP literals by CheckAddr, then localhost, reserved suffixes and
// bare names.
func CheckHost(host string) error {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "" {
		return fmt.Errorf("%w: empty host", ErrNonRoutable)
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil {
		return CheckAddr(a)
	}
	if h == "localhost" {
		return fmt.Errorf("%w: localhost", ErrNonRoutable)
	}
	for _, s := range reservedSuffixes {
		if strings.HasSuffix(h, s) {
			return fmt.Errorf("%w: reserved suffix %s", ErrNonRoutable, s)
		}
	}
	if !strings.Contains(h, ".") {
		return fmt.Errorf("%w: bare hostname without a top-level domain", ErrNonRoutable)
	}
	return nil
}

// CheckAddr refuses loopback, RFC1918, link-local, IPv6 ULA/link-local,
// CGNAT, unspecified, multicast, broadcast and reserved addresses, and
// IPv6 transition addresses (NAT64, 6to4, Teredo, IPv4-compatible) whose
// embedded IPv4 address is one of those.
func CheckAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	if err := checkPlain(a); err != nil {
		return err
	}
	for _, v4 := range embeddedV4(a) {
		if err := checkPlain(v4); err != nil {
			return fmt.Errorf("%w (embedded in an IPv6 transition address)", err)
		}
	}
	return nil
}

func checkPlain(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: invalid address", ErrNonRoutable)
	case a.IsLoopback():
		return fmt.Errorf("%w: loopback address", ErrNonRoutable)
	case a.IsUnspecified():
		return fmt.Errorf("%w: unspecified address", ErrNonRoutable)
	case a.IsPrivate(): // RFC1918 and IPv6 ULA fc00::/7
		return fmt.Errorf("%w: private address", ErrNonRoutable)
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return fmt.Errorf("%w: link-local address", ErrNonRoutable)
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return fmt.Errorf("%w: multicast address", ErrNonRoutable)
	}
	for _, p := range nonRoutable {
		if p.Contains(a) {
			return fmt.Errorf("%w: reserved or shared address space", ErrNonRoutable)
		}
	}
	if a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("%w: broadcast address", ErrNonRoutable)
	}
	return nil
}

// embeddedV4 returns the IPv4 addresses an IPv6 transition address
// carries (none for other addresses).
func embeddedV4(a netip.Addr) []netip.Addr {
	if !a.Is6() {
		return nil
	}
	b := a.As16()
	v4 := func(i int, invert bool) netip.Addr {
		var x [4]byte
		copy(x[:], b[i:i+4])
		if invert {
			for j := range x {
				x[j] ^= 0xff
			}
		}
		return netip.AddrFrom4(x)
	}
	switch {
	case nat64.Contains(a), v4compat.Contains(a):
		return []netip.Addr{v4(12, false)}
	case sixToFour.Contains(a):
		return []netip.Addr{v4(2, false)}
	case teredo.Contains(a):
		return []netip.Addr{v4(4, false), v4(12, true)}
	}
	return nil
}

// DialControl checks the resolved address at connect time (net.Dialer
// Control runs once per address, after resolution, before connect), so
// the address checked is the address dialled: a public name that
// resolves, or re-resolves (DNS rebinding), to a private address is never
// dialled.
func DialControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable dial address", ErrNonRoutable)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: unparsable dial address", ErrNonRoutable)
	}
	return CheckAddr(a)
}

// GuardedDialer is a net.Dialer that refuses non-routable addresses at
// connect time.
func GuardedDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: DialControl}
}

// GuardedClient is the HTTP client for every fetch a server makes on a
// caller's behalf: dials go through GuardedDialer, no environment proxy,
// no redirects followed (a redirect is answered as is), no kept-alive
// sockets, the whole exchange bounded by timeout. tlsConf may be nil
// (system roots, TLS 1.2+).
func GuardedClient(timeout time.Duration, tlsConf *tls.Config) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           GuardedDialer(timeout).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		DisableKeepAlives:     true,
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: NoRedirects}
}

// NoRedirects is an http.Client CheckRedirect that answers the redirect
// itself instead of following it.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
