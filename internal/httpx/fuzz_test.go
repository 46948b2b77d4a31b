package httpx

import (
	"net/netip"
	"testing"
)

// FuzzSourceKey: any remote address string maps to a key without
// panicking; a parsable IPv6 address maps to its /64.
func FuzzSourceKey(f *testing.F) {
	for _, s := range []string{"203.0.113.7:1", "[2001:db8::1]:443", "[fe80::1%eth0]:1", "garbage", "[::ffff:1.2.3.4]:5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := SourceKey(s)
		if k == "" {
			t.Fatal("empty key")
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Unmap().Is6() && !a.IsLoopback() {
			if p, err := netip.ParsePrefix(k); err != nil || p.Bits() != 64 {
				t.Fatalf("IPv6 %q keyed as %q", s, k)
			}
		}
	})
}
