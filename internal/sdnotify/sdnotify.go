package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// EnvSocket names the socket systemd passes.
const EnvSocket = "NOTIFY_SOCKET"

// Messages meshnode sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notify sends state (e.g. Ready, or "STATUS=registered") to $NOTIFY_SOCKET.
// sent is false when no socket is configured.
func Notify(state string) (sent bool, err error) {
	return NotifySocket(os.Getenv(EnvSocket), state)
}

// NotifySocket sends state to the socket at path; "@" at the start names
// a Linux abstract socket, as systemd documents.
func NotifySocket(path, state string) (sent bool, err error) {
	if path == "" {
		return false, nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: dialing %s: %w", EnvSocket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify: sending: %w", err)
	}
	return true, nil
}

// Status formats a STATUS= line (shown by systemctl status).
func Status(s string) string { return "STATUS=" + strings.ReplaceAll(s, "\n", " ") }
