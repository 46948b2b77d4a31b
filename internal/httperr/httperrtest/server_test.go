package httperrtest

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Each connection gets the reply verbatim and is closed; the cleanup ends
// the accept goroutine (TestMain checks).
func TestRawServerRepliesVerbatim(t *testing.T) {
	url := GarbageServer(t, "canary")
	for range 2 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || string(got) != "HTTP/1.1 canary nonsense\r\n\r\n" {
			t.Fatalf("got %q (%v)", got, err)
		}
	}
}
