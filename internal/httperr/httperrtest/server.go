package httperrtest

import (
	"io"
	"net"
	"testing"
	"time"
)

// maxConns bounds the connections one server answers, so its goroutine
// always ends; a test makes a handful of requests.
const maxConns = 32

// RawServer answers each connection (up to maxConns) by reading the request,
// writing reply verbatim ("" writes nothing) and closing. It returns the
// base URL (http://127.0.0.1:port); cleanup closes the listener and waits
// for the goroutine.
func RawServer(tb testing.TB, reply string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range maxConns {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = conn.Read(make([]byte, 4096))
			_, _ = io.WriteString(conn, reply)
			conn.Close()
		}
	}()
	tb.Cleanup(func() { ln.Close(); <-done })
	return "http://" + ln.Addr().String()
}

// GarbageServer answers with a malformed HTTP status line carrying canary,
// which net/http quotes verbatim in the error it returns ("malformed HTTP
// status code \"<canary>\"").
func GarbageServer(tb testing.TB, canary string) string {
	tb.Helper()
	return RawServer(tb, "HTTP/1.1 "+canary+" nonsense\r\n\r\n")
}
