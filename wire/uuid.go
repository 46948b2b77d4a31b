package wire

// UUIDv4 formats b as a version-4 UUID (RFC 9562 §5.4): it sets the version
// and variant bits and writes lowercase hex in the 8-4-4-4-12 layout. The
// caller supplies the bits — crypto/rand for task_id, call_id and node_id,
// or a key-derived value for a stable node_id — so wire itself reads no
// randomness.
func UUIDv4(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexDigits = "0123456789abcdef"
	var out [36]byte
	j := 0
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[x>>4], hexDigits[x&0x0f]
		j += 2
	}
	return string(out[:])
}
