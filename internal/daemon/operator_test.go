package daemon

import (
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/operator"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

// TestDIR_OPID_01_NodeSendsOnlyValidDelegation: the daemon puts the home's
// delegation into REGISTER while it verifies for this node; an expired one
// or another node's is not sent, status says why, and the operator is
// warned once per problem.
func TestDIR_OPID_01_NodeSendsOnlyValidDelegation(t *testing.T) {
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	_, opKey, _ := ed25519.GenerateKey(rand.Reader)
	logs := &testutil.SyncBuffer{}
	path := filepath.Join(t.TempDir(), operator.DelegationFile)
	d := &daemon{id: id, log: slog.New(slog.NewTextHandler(logs, nil)), operator: nodeOperator{path: path}}
	if d.delegation() != nil || d.operatorStatus() != nil {
		t.Fatal("no file: nothing to send, nothing to show")
	}
	now := time.Now()
	write := func(nodeID string, notAfter time.Time) {
		if err := operator.WriteDelegation(path, wire.SignDelegation(opKey, nodeID, notAfter.Unix())); err != nil {
			t.Fatal(err)
		}
	}
	write(id.NodeID(), now.Add(time.Hour))
	if got := d.delegation(); got == nil || got.NodeID != id.NodeID() {
		t.Fatalf("valid delegation not sent: %+v", got)
	}
	if st := d.operatorStatus(); st == nil || st.Problem != "" || st.Fingerprint != wire.OperatorFingerprint(opKey.Public().(ed25519.PublicKey)) {
		t.Fatalf("status: %+v", st)
	}
	write(id.NodeID(), now.Add(-time.Second))
	for range 3 {
		if d.delegation() != nil {
			t.Fatal("expired delegation sent")
		}
	}
	if st := d.operatorStatus(); st == nil || !strings.Contains(st.Problem, "expired") {
		t.Fatalf("status of an expired delegation: %+v", st)
	}
	if n := strings.Count(logs.String(), "operator delegation not sent"); n != 1 {
		t.Fatalf("warned %d times for one problem", n)
	}
	write("7c9e6679-7425-40de-944b-e07fc1f90ae7", now.Add(time.Hour))
	if d.delegation() != nil || !strings.Contains(d.operatorStatus().Problem, "another node_id") {
		t.Fatalf("another node's delegation: %+v", d.operatorStatus())
	}
}
