package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawPool is the dirscale load generator's HTTP/1.1 client: keep-alive
// connections, requests written as bytes, answers read by status line and
// Content-Length. net/http's client costs about as much CPU per request as
// the directory spends answering it, and on one shared 2-core host every
// microsecond the generator burns is taken from the server under test, so
// the pacers use this lean client (the lag probe and set-up keep net/http).
type rawPool struct {
	addr  string
	host  string
	conns chan *rawConn
}

type rawConn struct {
	c  net.Conn
	br *bufio.Reader
	wb []byte
}

// maxRawAnswer bounds one answer's body.
const maxRawAnswer = 1 << 20

func newRawPool(base string, size int) (*rawPool, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("raw client: %q is not a plaintext http:// base URL", base)
	}
	return &rawPool{addr: u.Host, host: u.Host, conns: make(chan *rawConn, size)}, nil
}

// close drops the idle connections.
func (p *rawPool) close() {
	for {
		select {
		case c := <-p.conns:
			_ = c.c.Close()
		default:
			return
		}
	}
}

func (p *rawPool) get(ctx context.Context) (*rawConn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	default:
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: c, br: bufio.NewReaderSize(c, 16<<10)}, nil
}

func (p *rawPool) put(c *rawConn) {
	select {
	case p.conns <- c:
	default:
		_ = c.c.Close()
	}
}

// do sends one request and returns the status and the body, which stays
// valid until buf is reused. A broken connection is dropped, never reused.
func (p *rawPool) do(ctx context.Context, method, path, token string, body []byte, buf *bytes.Buffer) (int, error) {
	c, err := p.get(ctx)
	if err != nil {
		return 0, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.c.SetDeadline(dl)
	} else {
		_ = c.c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	status, err := c.roundTrip(p.host, method, path, token, body, buf)
	var closed errConnClosed
	if errors.As(err, &closed) {
		_ = c.c.Close()
		return closed.status, nil
	}
	if err != nil {
		_ = c.c.Close()
		return 0, err
	}
	p.put(c)
	return status, nil
}

func (c *rawConn) roundTrip(host, method, path, token string, body []byte, buf *bytes.Buffer) (int, error) {
	w := append(c.wb[:0], method...)
	w = append(append(append(w, ' '), path...), " HTTP/1.1\r\nHost: "...)
	w = append(append(w, host...), "\r\nUser-Agent: meshnode-bench\r\n"...)
	if token != "" {
		w = append(append(append(w, "Authorization: Bearer "...), token...), "\r\n"...)
	}
	if body != nil {
		w = append(w, "Content-Type: application/json\r\nContent-Length: "...)
		w = append(strconv.AppendInt(w, int64(len(body)), 10), "\r\n"...)
	}
	w = append(append(w, "\r\n"...), body...)
	c.wb = w
	if _, err := c.c.Write(w); err != nil {
		return 0, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, errors.New("raw client: malformed status line")
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, errors.New("raw client: malformed status code")
	}
	length, closeAfter := -1, false
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, _ := bytes.Cut(h, []byte(":"))
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 || length > maxRawAnswer {
				return 0, errors.New("raw client: bad Content-Length")
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return 0, errors.New("raw client: chunked answers are not expected from the directory")
		case bytes.EqualFold(k, []byte("Connection")) && bytes.EqualFold(v, []byte("close")):
			closeAfter = true
		}
	}
	if length < 0 {
		return 0, errors.New("raw client: answer without Content-Length")
	}
	buf.Reset()
	if _, err := io.CopyN(buf, c.br, int64(length)); err != nil {
		return 0, err
	}
	if closeAfter {
		return status, errConnClosed{status}
	}
	return status, nil
}

// errConnClosed reports a complete answer on a connection the server
// closes; do treats it as success after dropping the connection.
type errConnClosed struct{ status int }

func (e errConnClosed) Error() string { return "connection closed by the server" }
