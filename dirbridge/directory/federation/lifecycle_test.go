package federation

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/meshnode/meshnode/dirbridge/directory"
)

// TestLifecycle_DirectoriesBindOnListen: NewSeedDirectory and
// NewReplicaDirectory bind no port and start no libp2p host (a port another
// listener holds does not fail them; no gossip address exists yet); Listen
// binds and reports the taken port as EADDRINUSE; Close then releases the
// stores. On a free port Listen binds the directory and the gossip host and
// opens the log / replica state under the bound URL's did:web.
func TestLifecycle_DirectoriesBindOnListen(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ctx := context.Background()
	dirCfg := func(listen string) directory.Config {
		c := dirConfig(t, t.TempDir(), 0)
		c.Listen = listen
		return c
	}
	seedCfg := func(listen string) SeedDirectoryConfig {
		return SeedDirectoryConfig{Directory: dirCfg(listen), Options: []directory.Option{directory.WithLogger(quietLog)},
			Seed: SeedConfig{Key: newKey(t), Insecure: true, Logger: quietLog}, Gossip: &GossipConfig{}}
	}
	sd, err := NewSeedDirectory(ctx, seedCfg(held.Addr().String()))
	if err != nil {
		t.Fatalf("NewSeedDirectory bound (or tried to bind): %v", err)
	}
	if sd.Addr() != nil || sd.GossipAddrs() != nil || sd.Seed() != nil {
		t.Fatal("NewSeedDirectory bound a listener, started its gossip host or opened its log")
	}
	if err := sd.Listen(ctx); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("seed Listen on a taken port: %v, want EADDRINUSE", err)
	}
	if err := sd.Close(); err != nil {
		t.Fatal(err)
	}

	sd, err = NewSeedDirectory(ctx, seedCfg("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if sd.Addr() == nil || len(sd.GossipAddrs()) == 0 || sd.Seed() == nil {
		t.Fatal("seed Listen left the listener, gossip host or log unopened")
	}
	if want, _ := DIDWebFor(sd.URL()); sd.Seed().DID() != want {
		t.Fatalf("seed DID %q, want the bound URL's %q", sd.Seed().DID(), want)
	}

	repCfg := func(listen string) ReplicaDirectoryConfig {
		return ReplicaDirectoryConfig{Directory: dirCfg(listen), Options: []directory.Option{directory.WithLogger(quietLog)},
			Replica: ReplicaConfig{SeedURL: sd.URL(), Key: newKey(t), Insecure: true, Logger: quietLog},
			Gossip:  &GossipConfig{Peers: sd.GossipAddrs()}}
	}
	rd, err := NewReplicaDirectory(ctx, repCfg(held.Addr().String()))
	if err != nil {
		t.Fatalf("NewReplicaDirectory bound (or tried to bind): %v", err)
	}
	if rd.Addr() != nil || rd.gossip.Host() != nil || rd.Replica() != nil {
		t.Fatal("NewReplicaDirectory bound a listener, started its gossip host or opened its state")
	}
	if err := rd.Listen(ctx); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("replica Listen on a taken port: %v, want EADDRINUSE", err)
	}
	if err := rd.Close(); err != nil {
		t.Fatal(err)
	}
	rd, err = NewReplicaDirectory(ctx, repCfg("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	if rd.Addr() == nil || rd.gossip.Host() == nil || rd.Replica() == nil {
		t.Fatal("replica Listen left the listener, gossip host or state unopened")
	}
	if err := rd.Close(); err != nil {
		t.Fatal(err)
	}
}
