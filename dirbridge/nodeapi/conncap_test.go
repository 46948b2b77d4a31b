package nodeapi_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/nodeapi"
)

// TestPerIPConnectionCapKeepsHealthProbesAlive is the review's starvation
// attack (issue 12 item 6): one client (127.0.0.2) opens far more
// connections than its cap and holds them; a health probe from another
// address (127.0.0.1) is still answered.
func TestPerIPConnectionCapKeepsHealthProbesAlive(t *testing.T) {
	srv, err := nodeapi.New(fakeEngine{}, nodeapi.WithAddr("127.0.0.1:0"), nodeapi.WithPlaintextDev(), nodeapi.WithMaxConnsPerIP(8))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 200 {
		c, err := d.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatalf("attacker dial: %v", err)
		}
		held = append(held, c)
	}
	// Count how many of the attacker's connections the server kept: the
	// refused ones are closed by the server and read EOF at once.
	open := 0
	for _, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	if open > 8 {
		t.Fatalf("server kept %d of the attacker's connections, cap is 8", open)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(srv.URL() + "/iicp/health")
	if err != nil {
		t.Fatalf("health probe starved: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health %d", resp.StatusCode)
	}
}
