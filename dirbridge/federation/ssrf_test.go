package federation

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestSecReplicaRegisterSSRF is the review's attack on a non-dev seed: an
// anonymous POST /v1/replicas/register whose did:web points at a loopback
// service (by address and by a name that resolves to loopback) must be
// refused, and the local service must see no connection at all. The
// endpoint is a public address literal, so the endpoint guard passes and
// the DID fetch is what is attacked.
func TestSecReplicaRegisterSSRF(t *testing.T) {
	var conns, hits atomic.Int64
	internal := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	internal.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	internal.StartTLS()
	defer internal.Close()
	_, port, _ := net.SplitHostPort(internal.Listener.Addr().String())

	seed := newSeedEnv(t, false, func(c *SeedConfig) { c.Insecure = false })
	for _, did := range []string{
		"did:web:127.0.0.1%3A" + port + ":internal:admin",
		"did:web:localhost%3A" + port + ":internal:admin", // a name, checked once resolved
		"did:web:[::1]%3A" + port,
	} {
		code, b := postJSON(t, seed.srv.URL+"/v1/replicas/register", "", RegisterReplicaRequest{DID: did, Endpoint: "https://203.0.113.5"})
		if code != 422 || errCode(b) != "IICP-E040" {
			t.Errorf("%s: %d %s, want 422 IICP-E040", did, code, b)
		}
		if strings.Contains(string(b), port) {
			t.Errorf("%s: the refusal echoes the internal address: %s", did, b)
		}
	}
	if conns.Load() != 0 || hits.Load() != 0 {
		t.Fatalf("the seed reached the internal service: %d connections, %d requests", conns.Load(), hits.Load())
	}
}

// TestSecReplicaEndpointTransitionAddresses: endpoints whose address is a
// NAT64, 6to4 or Teredo address embedding a loopback or private IPv4
// address are refused with IICP-E043 (DIR-FED-12).
func TestSecReplicaEndpointTransitionAddresses(t *testing.T) {
	seed := newSeedEnv(t, false, func(c *SeedConfig) { c.Insecure = false })
	for _, ep := range []string{
		"https://[64:ff9b::7f00:1]", "https://[64:ff9b::a00:1]:8443", "https://[2002:7f00:1::1]",
		"https://[2002:c0a8:101::1]", "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]",
	} {
		code, b := postJSON(t, seed.srv.URL+"/v1/replicas/register", "", RegisterReplicaRequest{DID: "did:web:example.com", Endpoint: ep})
		if code != 422 || errCode(b) != "IICP-E043" {
			t.Errorf("%s: %d %s, want 422 IICP-E043", ep, code, b)
		}
	}
}
