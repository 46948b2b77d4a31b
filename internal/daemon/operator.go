package daemon

import (
	"crypto/ed25519"
	"encoding/base64"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/internal/operator"
	"github.com/meshnode/meshnode/wire"
)

// nodeOperator is the node side of operator identity: the delegation
// `meshnode operator delegate` wrote into this node's home, read before
// every REGISTER so a renewed delegation is sent at the next
// registration without a restart.
type nodeOperator struct {
	path string

	mu       sync.Mutex
	status   *admin.OperatorStatus
	lastWarn string
}

// delegation returns the delegation to send in REGISTER, or nil when the
// node has none or it would not verify (wrong node, expired, damaged): a
// directory would ignore it (iicp-dir.md §3.1) and the operator is told
// once per problem what to run.
func (d *daemon) delegation() *wire.OperatorDelegation {
	o := &d.operator
	del, ok, err := operator.ReadDelegation(o.path)
	var st *admin.OperatorStatus
	if ok {
		st = &admin.OperatorStatus{NotAfter: time.Unix(del.NotAfter, 0).UTC()}
		if raw, derr := base64.StdEncoding.DecodeString(del.OperatorPub); derr == nil && len(raw) == ed25519.PublicKeySize {
			st.Fingerprint = wire.OperatorFingerprint(raw)
		}
		err = operator.ForNode(del, d.id.NodeID(), time.Now())
	}
	if err != nil && st == nil {
		st = &admin.OperatorStatus{}
	}
	if st != nil && err != nil {
		st.Problem = err.Error()
	}
	o.mu.Lock()
	o.status = st
	warn := err != nil && err.Error() != o.lastWarn
	if err != nil {
		o.lastWarn = err.Error()
	}
	o.mu.Unlock()
	if warn {
		d.log.Warn("operator delegation not sent; the node registers operator-unverified", "error", err)
	}
	if !ok || err != nil {
		return nil
	}
	return &del
}

// operatorStatus is the delegation as `meshnode status` shows it.
func (d *daemon) operatorStatus() *admin.OperatorStatus {
	d.operator.mu.Lock()
	defer d.operator.mu.Unlock()
	if d.operator.status == nil {
		return nil
	}
	s := *d.operator.status
	return &s
}

// applyOperator gives the mesh this node's delegation (nil: none or not
// valid now): it sends it on its task streams and adverts, and serves the
// nodes its operator delegated (docs/spec-decisions.md "Home mesh"). Called
// at start-up and when `meshnode operator delegate` tells the running node.
func (d *daemon) applyOperator() {
	if d.mesh == nil {
		return
	}
	if err := d.mesh.SetOperator(d.delegation()); err != nil {
		d.log.Warn("operator delegation not used on the mesh", "error", err)
	}
}

// lanLine is the start-up block's mDNS line ("" when mDNS is off): which
// LAN peers this node serves and sends tasks to.
func (d *daemon) lanLine() string {
	if d.mesh == nil || !d.cfg.Mesh.MDNS {
		return ""
	}
	if st := d.operatorStatus(); st != nil && st.Problem == "" && st.Fingerprint != "" {
		return "mDNS on; nodes of operator " + st.Fingerprint + " are served and sent tasks"
	}
	return "mDNS on; no operator delegation: LAN nodes are trusted only through a directory (meshnode operator delegate)"
}
