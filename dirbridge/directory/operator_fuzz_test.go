package directory

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// FuzzOperatorDelegation: any operator_delegation JSON decodes into a
// verdict without panicking, and never verifies unless it names the node
// and carries a valid signature (random input cannot).
func FuzzOperatorDelegation(f *testing.F) {
	f.Add([]byte(`{"node_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","operator_pub":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=","not_after":4102444800,"sig":"AAAA"}`))
	f.Add([]byte(`{"node_id":"","operator_pub":"-_-_","not_after":-1,"sig":"===="}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d *wire.OperatorDelegation
		if json.Unmarshal(raw, &d) != nil {
			return
		}
		if got, _ := verifiedOperator(d, "7c9e6679-7425-40de-944b-e07fc1f90ae7", time.Unix(1_800_000_000, 0)); got != "" {
			t.Fatalf("fuzzed delegation verified: %q", got)
		}
	})
}
