package main

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// BenchmarkMeshPathC1 runs one request at a time on each path of the mesh
// scenario (the real engine answering from the test backend): the HTTP
// bridge plaintext and TLS, and Mesh.Call over a QUIC task stream
// authorised by membership credential. Per-path sub-benchmarks, so a CPU
// profile (-cpuprofile) or allocation count (-benchmem) is one path's:
//
//	go test -run '^$' -bench MeshPathC1/mesh -benchtime 5000x -cpuprofile /tmp/mesh.prof ./bench
func BenchmarkMeshPathC1(b *testing.B) {
	ctx := context.Background()
	be := newLLMBackend(0)
	defer be.close()
	ns, err := newNodeStack(be, 128)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := ns.close(); err != nil {
			b.Error(err)
		}
	}()
	plain, secure, err := ns.bridgePaths(64)
	if err != nil {
		b.Fatal(err)
	}
	server, err := startMesh(ctx, "quic", mesh.Config{NodeID: ns.nodeID, Capabilities: ns.router.Capabilities(), MaxConcurrent: 128}, ns.engine, ns.key)
	if err != nil {
		b.Fatal(err)
	}
	ns.onClose(server.stop)
	client, err := startMesh(ctx, "quic", mesh.Config{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ns.onClose(client.stop)
	client.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Hour)
	if err := authoriseByMembership(server, client); err != nil {
		b.Fatal(err)
	}
	direct, closeDirect := directPath(be)
	defer closeDirect()
	raw, rawStream, err := rawStreamPath(ctx, client, server)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = rawStream.Close() }()
	// The engine called in process: what every bridge path pays for the
	// task itself, with no transport and no codec.
	engine := &path{name: "engine", do: func(ctx context.Context, seq int64) error {
		call, want := ns.call("engine", seq)
		return checkResponse(ns.engine.Execute(ctx, call, wire.Caller{Transport: "bench"}), call.TaskID, want)
	}}
	for _, p := range []*path{direct, engine, plain, secure, raw, ns.meshPath("mesh-quic", client.m, server.h.ID(), 1)} {
		b.Run(p.name, func(b *testing.B) {
			if err := warm(ctx, p, 1, 200); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			lat := make([]time.Duration, 0, b.N)
			cpu0 := processCPU()
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				if err := p.do(ctx, int64(i)); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			// CPU time of the whole process (caller, node, backend) per
			// request: steadier than latency on a shared machine.
			b.ReportMetric(micros(processCPU()-cpu0)/float64(b.N), "cpu-µs/op")
			slices.Sort(lat)
			b.ReportMetric(micros(lat[len(lat)/2]), "p50-µs")
			b.ReportMetric(micros(lat[len(lat)*99/100]), "p99-µs")
		})
	}
}

// rawStreamPath is the transport floor under mesh-quic: one reused libp2p
// stream between the same two hosts, a 300-byte frame out and a 400-byte
// frame back per request, no codec and no engine.
func rawStreamPath(ctx context.Context, client, server *meshNode) (*path, network.Stream, error) {
	const proto = "/meshnode-bench/echo/1"
	reply := make([]byte, 400)
	server.h.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		fr, fw := wire.NewFrameReader(s), wire.NewFrameWriter(s)
		for {
			if _, _, err := fr.ReadFrame(); err != nil {
				return
			}
			if err := fw.WriteFrame(wire.TypeResponse, 0, reply); err != nil {
				return
			}
		}
	})
	s, err := client.h.NewStream(ctx, server.h.ID(), proto)
	if err != nil {
		return nil, nil, err
	}
	fr, fw := wire.NewFrameReader(s), wire.NewFrameWriter(s)
	req := make([]byte, 300)
	return &path{name: "raw-quic", do: func(context.Context, int64) error {
		if err := fw.WriteFrame(wire.TypeCall, 0, req); err != nil {
			return err
		}
		_, _, err := fr.ReadFrame()
		return err
	}}, s, nil
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
