package directory

import (
	"fmt"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// TestDIR_DISC_02_RegionTableMatchesRegionMatch: the interned comparison
// is wire.RegionMatch for every pair, including case variants, empty
// labels, non-ASCII text and nodes whose region overflowed the table.
func TestDIR_DISC_02_RegionTableMatchesRegionMatch(t *testing.T) {
	regions := []string{"", "eu", "EU", "eu-west", "EU-West", "eu-central", "us-west", "-x", "-", "x-", "ünï-côde", "ÜNÏ-côde", "eu-west-2"}
	check := func(t *testing.T, tab *regionTable) {
		for _, have := range regions {
			it := &rankItem{e: &entry{rec: &NodeRecord{Region: have}}, region: tab.itemRegion(have)}
			for _, want := range append(regions, "ap-south", "AP") {
				q := tab.query(want)
				if got, exp := q.match(it), wire.RegionMatch(want, have); got != exp {
					t.Errorf("match(%q, %q) = %v, wire.RegionMatch says %v", want, have, got, exp)
				}
			}
		}
	}
	t.Run("interned", func(t *testing.T) { check(t, newRegionTable()) })
	t.Run("overflowed", func(t *testing.T) {
		tab := newRegionTable()
		for i := 0; len(tab.ids) < maxRegionKeys; i++ {
			tab.intern(fmt.Sprintf("filler-%d", i))
		}
		if tab.intern("never-seen") != regionOverflow {
			t.Fatal("a full table still grows")
		}
		check(t, tab)
	})
}

// TestDIR_DISC_02_IDKeyOrdersLikeStrings: the tie-break key never orders
// two node IDs against their string order (equal keys fall back to it).
func TestDIR_DISC_02_IDKeyOrdersLikeStrings(t *testing.T) {
	ids := []string{"", "a", "a\x00", "a\x00\x00\x00\x00\x00\x00\x00b", "ab", "abcdefgh", "abcdefghi", "abcdefgg~", "b",
		"0f1e2d3c-0000-4000-8000-000000000000", "0f1e2d3c-0000-4000-8000-000000000001", "0f1e2d3d-0000-4000-8000-000000000000"}
	for _, a := range ids {
		for _, b := range ids {
			ka, kb := idKey(a), idKey(b)
			if (ka < kb && !(a < b)) || (ka > kb && !(a > b)) {
				t.Errorf("idKey orders %q against %q wrongly", a, b)
			}
		}
	}
}
