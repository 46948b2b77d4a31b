package wire

import "testing"

// UUIDv4 output always passes our own v4 validator, for any input bits.
func TestUUIDv4(t *testing.T) {
	cases := []struct {
		in   [16]byte
		want string
	}{
		// all zero: only the version and variant bits are set
		{[16]byte{}, "00000000-0000-4000-8000-000000000000"},
		// all ones: version and variant bits are forced
		{[16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff,
			8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff},
			"ffffffff-ffff-4fff-bfff-ffffffffffff"},
		// byte order and hex case
		{[16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef},
			"01234567-89ab-4def-8123-456789abcdef"},
	}
	for _, c := range cases {
		got := UUIDv4(c.in)
		if got != c.want {
			t.Errorf("UUIDv4(%x) = %s, want %s", c.in, got, c.want)
		}
		if !ValidUUIDv4(got) {
			t.Errorf("UUIDv4(%x) = %s fails ValidUUIDv4", c.in, got)
		}
	}
}
