package directory

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

// The attacks of issue 12 (items 3 and 4), run the way the review ran them.

// TestSecRegisterJunkFloodDoesNotLockOutNewSources: 100,000 junk REGISTER
// POSTs from distinct source addresses (IPv4 and IPv6, through a trusted
// proxy's X-Forwarded-For), then a legitimate new address registers.
func TestSecRegisterJunkFloodDoesNotLockOutNewSources(t *testing.T) {
	h := startHarness(t, func(c *Config) { c.TrustedProxies = []string{"127.0.0.0/8"} })
	handler := h.s.Handler()
	for i := range 100_000 {
		src := fmt.Sprintf("198.%d.%d.%d", 18+i>>16&1, i>>8&0xff, i&0xff)
		if i%2 == 1 {
			src = fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/register", strings.NewReader(`{"endpoint":"x"}`))
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("X-Forwarded-For", src)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnprocessableEntity {
			t.Fatalf("junk %d from %s: %d %s", i, src, rec.Code, rec.Body)
		}
	}
	b := h.regBody("node1")
	r := h.do(http.MethodPost, "/v1/register", b, map[string]string{"X-Forwarded-For": "203.0.113.77"})
	if r.status != http.StatusCreated {
		t.Fatalf("legitimate newcomer after the flood: %d %s", r.status, r.body)
	}
	if n := h.s.regLimit.Len(); n > 1 {
		t.Fatalf("junk was charged: %d limiter keys", n)
	}
}

// TestSecRegisterLimitGroupsIPv6By64: addresses of one /64 share one
// budget; another /64 has its own.
func TestSecRegisterLimitGroupsIPv6By64(t *testing.T) {
	h := startHarness(t, func(c *Config) {
		c.TrustedProxies = []string{"127.0.0.0/8"}
		c.RegisterRateLimit = 3
	})
	for i := range 3 {
		src := fmt.Sprintf("2001:db8:1:1::%x", i+1)
		if r := h.do(http.MethodPost, "/v1/register", h.regBody(testHosts[i]), map[string]string{"X-Forwarded-For": src}); r.status != http.StatusCreated {
			t.Fatalf("registration %d: %d %s", i, r.status, r.body)
		}
	}
	r := h.do(http.MethodPost, "/v1/register", h.regBody("node4"), map[string]string{"X-Forwarded-For": "2001:db8:1:1:ffff:ffff:ffff:fffe"})
	if r.status != http.StatusTooManyRequests || r.errCode(t) != "rate_limited" {
		t.Fatalf("4th from the same /64: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodPost, "/v1/register", h.regBody("node4"), map[string]string{"X-Forwarded-For": "2001:db8:1:2::1"}); r.status != http.StatusCreated {
		t.Fatalf("another /64: %d %s", r.status, r.body)
	}
}

// TestSecHeartbeatTokenGuessingThrottledAndLogged: a source guessing node
// tokens is throttled after a few misses and the operator sees WARN lines
// (bounded, never the token); the owner's heartbeat is unaffected.
func TestSecHeartbeatTokenGuessingThrottledAndLogged(t *testing.T) {
	var logs testutil.SyncBuffer
	node := newHealthNode(t)
	cfg := testConfig(t, node, t.TempDir())
	cfg.TrustedProxies = []string{"127.0.0.0/8"}
	h := startWithLog(t, node, cfg, newFakeClock(), &logs)
	id, tok := h.register(h.regBody("node1"))
	statuses := map[int]int{}
	for i := range 500 {
		guess := fmt.Sprintf("%064x", i)
		hdr := map[string]string{"X-Forwarded-For": "198.51.100.9", "Authorization": "Bearer " + guess}
		statuses[h.do(http.MethodPost, "/v1/heartbeat", map[string]any{"node_id": id}, hdr).status]++
	}
	if statuses[http.StatusUnauthorized] != badTokensPerMin || statuses[http.StatusTooManyRequests] != 500-badTokensPerMin {
		t.Fatalf("guessing not throttled: %v", statuses)
	}
	// Deregistration with guessed tokens from the same source is throttled too.
	if r := h.do(http.MethodDelete, "/v1/register", nil, map[string]string{"X-Forwarded-For": "198.51.100.9", "Authorization": "Bearer " + strings.Repeat("ee", 32)}); r.status != http.StatusTooManyRequests {
		t.Fatalf("deregister from a throttled source: %d", r.status)
	}
	if r := h.heartbeat(id, tok, nil); r.status != http.StatusOK {
		t.Fatalf("owner heartbeat: %d %s", r.status, r.body)
	}
	out := logs.String()
	warns := strings.Count(out, "level=WARN msg=\"invalid node token\"")
	if warns == 0 || warns > badTokenLogLines {
		t.Fatalf("%d WARN lines about bad tokens, want 1..%d", warns, badTokenLogLines)
	}
	if strings.Contains(out, fmt.Sprintf("%064x", 3)) || strings.Contains(out, tok) {
		t.Fatal("a token reached the log")
	}
}

// TestSecE050TokenlessReRegisterCannotHijack: the review's hijack. A
// token-less re-registration of a known public node_id is refused with
// IICP-E050; the owner's token keeps working and the attacker holds no
// credential to deregister the node with.
func TestSecE050TokenlessReRegisterCannotHijack(t *testing.T) {
	h := startHarness(t, nil)
	id, tok := h.register(h.regBody("node1"))
	hijack := h.regBody("node1")
	hijack["node_id"] = id
	r := h.do(http.MethodPost, "/v1/register", hijack, nil)
	if r.status != http.StatusForbidden || r.errCode(t) != "IICP-E050" {
		t.Fatalf("token-less re-register: %d %s", r.status, r.body)
	}
	if bytes.Contains(r.body, []byte(`"node_token"`)) {
		t.Fatal("refusal carries a token")
	}
	if r := h.heartbeat(id, tok, nil); r.status != http.StatusOK {
		t.Fatalf("owner token after the attempt: %d", r.status)
	}
	owner := h.regBody("node1")
	owner["node_id"], owner["current_node_token"] = id, tok
	if r := h.do(http.MethodPost, "/v1/register", owner, nil); r.status != http.StatusCreated {
		t.Fatalf("owner refresh: %d %s", r.status, r.body)
	}
}

// TestSecOperatorDelegationSecuresNode: a valid operator_delegation is
// verified and recorded (never served); the node is then "secured" and a
// token-less refresh is E050 with the secured message. A forged
// delegation registers but secures nothing.
func TestSecOperatorDelegationSecuresNode(t *testing.T) {
	h := startHarness(t, nil)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	id := "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	notAfter := h.clock.Now().Unix() + 3600
	d := &wire.OperatorDelegation{NodeID: id, OperatorPub: base64.StdEncoding.EncodeToString(pub), NotAfter: notAfter}
	d.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, wire.DelegationBytes(d)))
	b := h.regBody("node1")
	b["node_id"], b["operator_delegation"] = id, d
	_, tok := h.register(b)
	if got := h.s.store.idx.get(id).rec.OperatorPubKey; got != d.OperatorPub {
		t.Fatalf("operator_pubkey recorded %q, want %q", got, d.OperatorPub)
	}
	if r := h.do(http.MethodGet, "/v1/node/"+id, nil, nil); bytes.Contains(r.body, []byte(d.OperatorPub)) {
		t.Fatal("operator_pubkey is served")
	}
	refresh := h.regBody("node1")
	refresh["node_id"] = id
	r := h.do(http.MethodPost, "/v1/register", refresh, nil)
	if r.status != http.StatusForbidden || r.errCode(t) != "IICP-E050" || !bytes.Contains(r.body, []byte("operator key")) {
		t.Fatalf("secured node token-less refresh: %d %s", r.status, r.body)
	}
	refresh["current_node_token"] = tok
	if r := h.do(http.MethodPost, "/v1/register", refresh, nil); r.status != http.StatusCreated {
		t.Fatalf("owner refresh: %d %s", r.status, r.body)
	}
	if h.s.store.idx.get(id).rec.OperatorPubKey != d.OperatorPub {
		t.Fatal("owner refresh without a delegation dropped the operator binding")
	}

	forged := *d
	forged.NodeID = "0b8e6d5c-1f2a-4c3b-8d4e-5f6a7b8c9d0e"
	f := h.regBody("node2")
	f["node_id"], f["operator_delegation"] = forged.NodeID, forged
	h.register(f)
	if got := h.s.store.idx.get(forged.NodeID).rec.OperatorPubKey; got != "" {
		t.Fatalf("a delegation signed for another node_id secured this one: %q", got)
	}
}

// TestSecDatabaseFilesAre0600AndSynchronousFull: dir.db holds the signing
// key and token hashes, so it and its -wal/-shm are 0600 (also when an
// older version left a 0644 file), keys are 0600, and every commit is
// synchronous=FULL (issue 12 item 5).
func TestSecDatabaseFilesAre0600AndSynchronousFull(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "directory.db")
	if err := os.WriteFile(legacy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, func(c *Config) { c.StateDir = dir })
	h.register(h.regBody("node1"))
	files := []string{legacy, legacy + "-wal", legacy + "-shm"}
	keys, _ := filepath.Glob(filepath.Join(dir, "*key*"))
	for _, f := range append(files, keys...) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
		}
	}
	var sync int
	if err := h.s.store.db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous = %d (%v), want 2 (FULL)", sync, err)
	}
}

// TestSecHealthReportsFailingStore: with a store that refuses writes (disk
// full, simulated by SQLite triggers aborting every write), REGISTER fails
// and /iicp/health and /readyz say so instead of "ok" (issue 12 item 6).
func TestSecHealthReportsFailingStore(t *testing.T) {
	h := startHarness(t, nil)
	if r := h.do(http.MethodGet, "/iicp/health", nil, nil); r.status != http.StatusOK || r.json(t)["store"] != "ok" {
		t.Fatalf("healthy store: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/readyz", nil, nil); r.status != http.StatusOK {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	var full []string
	for _, tbl := range []string{"meta", "nodes"} {
		for _, op := range []string{"INSERT", "UPDATE"} {
			name := "disk_full_" + tbl + "_" + op
			full = append(full, name)
			if _, err := h.s.store.db.Exec("CREATE TRIGGER " + name + " BEFORE " + op + " ON " + tbl +
				" BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.clock.Advance(storeCheckEvery + time.Second)
	if r := h.do(http.MethodPost, "/v1/register", h.regBody("node1"), nil); r.status != http.StatusInternalServerError {
		t.Fatalf("register on a full disk: %d %s", r.status, r.body)
	}
	r := h.do(http.MethodGet, "/iicp/health", nil, nil)
	if r.status != http.StatusServiceUnavailable || r.json(t)["store"] != "failing" || r.json(t)["status"] == "ok" {
		t.Fatalf("health with a failing store: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/readyz", nil, nil); r.status != http.StatusServiceUnavailable || r.errCode(t) != string(wire.CodeUnavailable) {
		t.Fatalf("readyz with a failing store: %d %s", r.status, r.body)
	}
	for _, name := range full {
		if _, err := h.s.store.db.Exec("DROP TRIGGER " + name); err != nil {
			t.Fatal(err)
		}
	}
	h.clock.Advance(storeCheckEvery + time.Second)
	if r := h.do(http.MethodGet, "/iicp/health", nil, nil); r.status != http.StatusOK {
		t.Fatalf("health after recovery: %d %s", r.status, r.body)
	}
}

// TestSecTLSHandshakeErrorsAreCounted: bytes that are not TLS sent to the
// directory's TLS listener surface as a counter on /metrics, not only as a
// debug log line (issue 12 item 6).
func TestSecTLSHandshakeErrorsAreCounted(t *testing.T) {
	h := startHarness(t, nil)
	if !h.s.TLS() {
		t.Fatal("test premise: the harness directory speaks TLS")
	}
	for range 3 {
		c, err := net.Dial("tcp", h.s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}
	testutil.WaitFor(t, 5*time.Second, "3 TLS handshake errors counted", func() bool {
		return h.s.lnStats.TLSHandshakeErrors.Load() >= 3
	})
	r := h.do(http.MethodGet, "/metrics", nil, nil)
	if !bytes.Contains(r.body, []byte("meshnode_directory_tls_handshake_errors_total 3")) {
		t.Fatalf("metric missing:\n%s", r.body)
	}
}

// TestSecSigningKeyMovesOutOfTheDatabase: the signing key an earlier
// version kept inside dir.db moves to a 0600 key file (same key, so issued
// tokens stay valid) and leaves the database; a restart reads the file.
func TestSecSigningKeyMovesOutOfTheDatabase(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "directory.db")
	st, err := openStore(t.Context(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	if _, err := st.db.Exec(`INSERT INTO meta (k, v) VALUES (?, ?)`, legacySigningKey, seed); err != nil {
		t.Fatal(err)
	}
	st.close()
	want := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	for round := range 2 {
		h := startHarness(t, func(c *Config) { c.StateDir = dir })
		if !h.s.PublicKey().Equal(want) {
			t.Fatalf("round %d: the signing key changed", round)
		}
		var n int
		if err := h.s.store.db.QueryRow(`SELECT count(*) FROM meta WHERE k = ?`, legacySigningKey).Scan(&n); err != nil || n != 0 {
			t.Fatalf("round %d: key still in the database (%d, %v)", round, n, err)
		}
		fi, err := os.Stat(filepath.Join(dir, SigningKeyFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("round %d: key file %v %v", round, fi, err)
		}
		h.stop()
	}
}
