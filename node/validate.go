package node

import (
	"github.com/meshnode/meshnode/wire"
)

// validateCall checks the CALL shape (iicp-core.md §3.1, schemas/task.json)
// through the wire package, the single owner of validation rules.
func validateCall(c *wire.Call) *wire.Error { return wire.ValidateCall(c) }
