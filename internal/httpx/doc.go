// Package httpx holds the HTTP server pieces every meshnode server shares
// (the node's HTTP door, the directory, its federation endpoints and the
// admin socket), so each rule exists once:
//
//   - WriteError / WriteJSON: the one IICP error writer, the
//     {"error":{"code","message"}} envelope in JSON or CBOR with
//     Retry-After, no-store and nosniff;
//   - Recoverer: a panic becomes a structured 500; the log gets the stack,
//     never the panic value (SEC-LOG-01);
//   - Limiter and SourceKey: the keyed rolling-window rate limiter with
//     bounded memory (least recently used keys are evicted, never new keys
//     refused) and the source key that groups IPv6 by /64;
//   - ConnCap: a net.Listener wrapper capping open connections per source
//     IP and counting accept and TLS handshake errors;
//   - Guard: the one SSRF-guarded dialer and HTTP client for every fetch a
//     server makes on a caller's behalf (the checked address is the dialled
//     one; redirects are refused);
//   - LogLimiter: at most n log lines per interval for one kind of event a
//     caller can trigger at will.
//
// httpx is a leaf: it imports the standard library and wire only.
package httpx
