package directory

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// errNonRoutable marks an endpoint the directory must not register or dial
// (IICP-E035, iicp-dir.md §3.1 RoutableEndpoint). It wraps a reason that is
// safe to show the caller.
var errNonRoutable = errors.New("non-routable endpoint")

// reservedSuffixes are the name suffixes §3.1 / iicp-core.md §7 refuse.
var reservedSuffixes = []string{".local", ".test", ".example", ".invalid", ".lan", ".internal", ".localhost"}

// nonRoutable lists the prefixes refused beside loopback/private/link-local
// (which netip classifies itself): CGNAT, "this network", class E.
var nonRoutable = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// checkHost applies the name-level routability rules to a URL host (no port).
func checkHost(host string) error {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "" {
		return fmt.Errorf("%w: empty host", errNonRoutable)
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil {
		return checkAddr(a)
	}
	if h == "localhost" {
		return fmt.Errorf("%w: localhost", errNonRoutable)
	}
	for _, s := range reservedSuffixes {
		if strings.HasSuffix(h, s) {
			return fmt.Errorf("%w: reserved suffix %s", errNonRoutable, s)
		}
	}
	if !strings.Contains(h, ".") {
		return fmt.Errorf("%w: bare hostname without a top-level domain", errNonRoutable)
	}
	return nil
}

// checkAddr refuses loopback, RFC1918, link-local, IPv6 ULA/link-local,
// CGNAT, unspecified, multicast and reserved addresses.
func checkAddr(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return fmt.Errorf("%w: loopback address", errNonRoutable)
	case a.IsUnspecified():
		return fmt.Errorf("%w: unspecified address", errNonRoutable)
	case a.IsPrivate(): // RFC1918 and IPv6 ULA fc00::/7
		return fmt.Errorf("%w: private address", errNonRoutable)
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return fmt.Errorf("%w: link-local address", errNonRoutable)
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return fmt.Errorf("%w: multicast address", errNonRoutable)
	}
	for _, p := range nonRoutable {
		if p.Contains(a) {
			return fmt.Errorf("%w: reserved or shared address space", errNonRoutable)
		}
	}
	if a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("%w: broadcast address", errNonRoutable)
	}
	return nil
}

// dialControl re-checks the resolved address at connect time, so a public
// name that resolves (or re-resolves, DNS rebinding) to a private address is
// never dialled.
func dialControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable dial address", errNonRoutable)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: unparsable dial address", errNonRoutable)
	}
	return checkAddr(a)
}
