package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
)

// proxyPath is the same chat request as the direct path, sent through a
// bare httputil.ReverseProxy hop on loopback in front of the backend. The
// proxy does no IICP work at all (no decode, validation, authorization,
// metrics, re-encoding), so its throughput is the physical limit of any
// node that forwards a task over HTTP on this machine; node-http's share
// of it (vs proxy×) is the node's own per-task cost, issue 11 item 9.
// Both hops use the node's backend transport tuning (nodeTransport), and
// the proxy a copy-buffer pool, so neither is handicapped.
func proxyPath(be *llmBackend) (*path, func(), error) {
	u, err := url.Parse(be.url())
	if err != nil {
		return nil, nil, err
	}
	upstream := nodeTransport()
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = upstream
	rp.BufferPool = &copyBuffers{}
	srv := httptest.NewServer(rp)
	client := &http.Client{Transport: nodeTransport()}
	p := chatPath("proxy", "proxy", client, srv.URL+"/v1/chat/completions")
	closeAll := func() {
		client.CloseIdleConnections()
		srv.Close()
		upstream.CloseIdleConnections()
	}
	return p, closeAll, nil
}

// copyBuffers is the ReverseProxy copy-buffer pool: without it every
// proxied response allocates 32 KiB.
type copyBuffers struct{ p sync.Pool }

func (b *copyBuffers) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *copyBuffers) Put(v []byte) { b.p.Put(&v) }

// setVsProxy fills VsProxy on the node-http rows: node-http throughput
// over the proxy's, both measured in the same rounds of one case.
func setVsProxy(rows []Row) {
	var proxy *Row
	for i := range rows {
		if rows[i].Path == "proxy" {
			proxy = &rows[i]
		}
	}
	if proxy == nil || proxy.PerSec <= 0 {
		return
	}
	for i := range rows {
		if rows[i].Path == "node-http" {
			rows[i].VsProxy = rows[i].PerSec / proxy.PerSec
		}
	}
}
