package federation

import (
	"errors"
	"time"
)

// ReplicaStatus is the lifecycle state of a replica row on the seed
// (S.13 §7.1–§7.2).
type ReplicaStatus string

// Replica lifecycle states. Only active replicas are served; the others are
// kept as audit tombstones (S.13 §7.2, DIR-FED-23).
const (
	ReplicaActive         ReplicaStatus = "active"
	ReplicaDormant        ReplicaStatus = "dormant"
	ReplicaArchived       ReplicaStatus = "archived"
	ReplicaDecommissioned ReplicaStatus = "decommissioned"
)

// Standing errors; the seed answers both with 401 unauthorized.
var (
	ErrReplicaExpired  = errors.New("replica credential expired")
	ErrReplicaInactive = errors.New("replica is not active")
)

// CheckStanding decides whether a replica row may use its credential:
// the persistent row must be active and unexpired, independently of whether
// the presented token verifies (DIR-FED-23). Expiry is checked first so an
// expired decommissioned row reports expiry, matching the fixture's order.
func CheckStanding(status ReplicaStatus, expiresAt, now time.Time) error {
	if !now.Before(expiresAt) {
		return ErrReplicaExpired
	}
	if status != ReplicaActive {
		return ErrReplicaInactive
	}
	return nil
}
