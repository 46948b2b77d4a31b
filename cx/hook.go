package cx

import (
	"encoding/json"

	"github.com/meshnode/meshnode/wire"
)

// Hook adapts the Provider to the HTTP bridge's confidential-body hook
// (dirbridge/httpapi.OpenConfidential has exactly this signature), so the
// composition root wires IICP-CX in one line:
//
//	httpapi.WithConfidential(prov.Hook())
//
// The returned respond function is never nil: a plaintext task gets the
// bridge's ordinary JSON encoding, an opened envelope gets Opened.Respond
// (sealed per §5a.3 when negotiated and successful, plain otherwise). Both
// paths hand the engine the same decoded CALL, so plaintext and encrypted
// tasks share admission, idempotency, deadlines and metrics.
func (p *Provider) Hook() func(body []byte) ([]byte, func(*wire.Response) ([]byte, error), *wire.Error) {
	return func(body []byte) ([]byte, func(*wire.Response) ([]byte, error), *wire.Error) {
		o, werr := p.Open(body)
		if werr != nil {
			return nil, nil, werr
		}
		if !o.Encrypted {
			return o.Call, plainJSON, nil
		}
		return o.Call, o.Respond, nil
	}
}

// plainJSON renders a RESPONSE exactly as the bridge does without CX.
func plainJSON(resp *wire.Response) ([]byte, error) { return json.Marshal(resp) }
