package httpx

import (
	"net"
	"strings"
)

// IsLoopbackHost reports whether a host — a name, an IP, a bracketed IPv6
// literal, or any of these with a port (a Host header) — names this
// machine only: "localhost" in any case, or a loopback IP. An empty host
// (all interfaces) is not loopback. Every loopback-only rule (plaintext
// bridge, keyless OpenAI API and MCP server, the admin endpoint, DNS
// rebinding checks) asks this one question.
func IsLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopbackAddr reports whether a host:port listen address binds only
// loopback; anything that is not host:port is not.
func IsLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && IsLoopbackHost(host)
}
