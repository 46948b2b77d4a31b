package federation

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSecSeedLogFilesAre0600AndSynchronousFull: the signed event log is
// committed with synchronous=FULL before an event is acknowledged or sent
// to replicas, and its files are 0600 (issue 12 item 5).
func TestSecSeedLogFilesAre0600AndSynchronousFull(t *testing.T) {
	seed := newSeedEnv(t, false)
	seed.register(t, nodeID(1))
	var sync int
	if err := seed.seed.el.db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous = %d (%v), want 2 (FULL)", sync, err)
	}
	path := seed.seed.cfg.DBPath
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
		}
	}
}
