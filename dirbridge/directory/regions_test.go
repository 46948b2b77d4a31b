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
