package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestNotifySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sent, err := NotifySocket(path, Ready)
	if err != nil || !sent {
		t.Fatalf("sent=%v err=%v", sent, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q %v", buf[:n], err)
	}
}

func TestAbstractSocket(t *testing.T) {
	name := "meshnode-test-" + time.Now().Format("150405.000000000")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "\x00" + name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if sent, err := NotifySocket("@"+name, Stopping); err != nil || !sent {
		t.Fatalf("abstract socket: sent=%v err=%v", sent, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != Stopping {
		t.Fatalf("got %q %v", buf[:n], err)
	}
}

func TestNoSocketIsNoop(t *testing.T) {
	sent, err := NotifySocket("", Ready)
	if sent || err != nil {
		t.Fatalf("sent=%v err=%v", sent, err)
	}
	if _, err := NotifySocket(filepath.Join(t.TempDir(), "absent"), Ready); err == nil {
		t.Fatal("missing socket not reported")
	}
	if Status("a\nb") != "STATUS=a b" {
		t.Fatal("status newline not flattened")
	}
}
