// Command decoy occupies well-known meshnode and Ollama ports on loopback
// while CI runs the tests, so a test that touches a port or service it did
// not start is caught: it either fails to bind, or it reaches a decoy that
// answers like an Ollama with a bogus model and then holds the connection
// open (the keep-alive goleak reports). Every contact is counted; on
// SIGTERM or SIGINT the decoy prints what touched it and exits 1 if
// anything did, 0 otherwise.
//
//	decoy -ports 11434,8010,8090,9485 -ready /tmp/decoy.ready
//
// It lives under .ci/ (outside ./...) because it is CI tooling, not part of
// meshnode; it needs only the Go standard library.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// answer looks like Ollama's GET /api/tags, so autodetection "finds" a model
// no test configured, and keeps the connection alive.
const answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n" +
	"Connection: keep-alive\r\n\r\n{\"models\":[{\"name\":\"decoy:latest\"}]}"

type decoy struct {
	mu      sync.Mutex
	touched []string
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

func (d *decoy) note(what string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.touched) < 1000 {
		d.touched = append(d.touched, what)
	}
}

func main() {
	ports := flag.String("ports", "11434,8010,8090,9485", "comma-separated ports to occupy on 127.0.0.1 (TCP and UDP)")
	ready := flag.String("ready", "", "file to create once every listener is bound")
	flag.Parse()
	if err := run(*ports, *ready); err != nil {
		fmt.Fprintln(os.Stderr, "decoy:", err)
		os.Exit(1)
	}
}

func run(portList, ready string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d := &decoy{conns: map[net.Conn]struct{}{}}
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	for _, p := range strings.Split(portList, ",") {
		port, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("tcp %s: %w (something already listens there; CI needs the port free)", addr, err)
		}
		closers = append(closers, ln.Close)
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("udp %s: %w", addr, err)
		}
		closers = append(closers, pc.Close)
		d.wg.Add(2)
		go d.serveTCP(ln)
		go d.serveUDP(pc)
	}
	if ready != "" {
		if err := os.WriteFile(ready, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "decoy: holding 127.0.0.1 ports %s (tcp+udp)\n", portList)
	<-ctx.Done()
	for _, c := range closers {
		_ = c()
	}
	closers = nil
	d.mu.Lock()
	for c := range d.conns {
		_ = c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
	if len(d.touched) > 0 {
		return fmt.Errorf("%d contacts from tests with ports they did not start:\n  %s",
			len(d.touched), strings.Join(d.touched, "\n  "))
	}
	fmt.Fprintln(os.Stderr, "decoy: untouched")
	return nil
}

func (d *decoy) serveTCP(ln net.Listener) {
	defer d.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		d.note(fmt.Sprintf("%s tcp %s -> %s", time.Now().UTC().Format(time.RFC3339), c.RemoteAddr(), ln.Addr()))
		d.mu.Lock()
		d.conns[c] = struct{}{}
		d.mu.Unlock()
		d.wg.Add(1)
		go d.hold(c)
	}
}

// hold answers each read with the fake Ollama answer and keeps the
// connection until the peer or the decoy closes it.
func (d *decoy) hold(c net.Conn) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.conns, c)
		d.mu.Unlock()
		_ = c.Close()
	}()
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
		if _, err := c.Write([]byte(answer)); err != nil {
			return
		}
	}
}

func (d *decoy) serveUDP(pc net.PacketConn) {
	defer d.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		d.note(fmt.Sprintf("%s udp %s -> %s (%d bytes)", time.Now().UTC().Format(time.RFC3339), from, pc.LocalAddr(), n))
		_, _ = pc.WriteTo([]byte("decoy garbage"), from)
	}
}
