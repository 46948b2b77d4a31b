package federation

import (
	"errors"
	"strconv"

	"github.com/meshnode/meshnode/internal/jsonscan"
)

// A liveness digest carries tens of thousands of rows every interval (at
// 100k nodes heartbeating every 30 s, ~40k per 10 s digest). Encoding them
// through encoding/json's reflection cost the seed ~85 ms of CPU and tens
// of MiB of garbage per digest, a burst that showed in heartbeat and
// discover tail latency. The appenders below write the same bytes as
// json.Marshal (TestLivenessEncodingMatchesJSON checks it) in one buffer.

var errLivenessValue = errors.New("liveness digest: value is not finite")

// appendLivenessDigest appends d exactly as json.Marshal encodes it.
func appendLivenessDigest(b []byte, d *LivenessDigest) ([]byte, error) {
	b = append(b, `{"schema":`...)
	b = jsonscan.AppendString(b, d.Schema)
	b = append(b, `,"seed_did":`...)
	b = jsonscan.AppendString(b, d.SeedDID)
	b = strconv.AppendInt(append(b, `,"ts_ms":`...), d.TsMs, 10)
	b = strconv.AppendInt(append(b, `,"head_seq":`...), d.HeadSeq, 10)
	b = strconv.AppendInt(append(b, `,"since_ms":`...), d.SinceMs, 10)
	b = append(b, `,"nodes":`...)
	if d.Nodes == nil {
		return append(b, "null}"...), nil
	}
	b = append(b, '[')
	for i := range d.Nodes {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendLiveNode(b, &d.Nodes[i]); err != nil {
			return nil, err
		}
	}
	return append(b, "]}"...), nil
}

// appendLiveNode appends one row in LiveNode's field order and omitempty rules.
func appendLiveNode(b []byte, n *LiveNode) ([]byte, error) {
	b = append(b, `{"node_id":`...)
	b = jsonscan.AppendString(b, n.NodeID)
	b = strconv.AppendInt(append(b, `,"last_seen_ms":`...), n.LastSeenMs, 10)
	b = strconv.AppendBool(append(b, `,"available":`...), n.Available)
	ok := true
	if n.Load != nil {
		if b, ok = jsonscan.AppendFloat(append(b, `,"load":`...), *n.Load); !ok {
			return nil, errLivenessValue
		}
	}
	b = strconv.AppendInt(append(b, `,"active_jobs":`...), int64(n.ActiveJobs), 10)
	if n.Reputation != nil {
		if b, ok = jsonscan.AppendFloat(append(b, `,"reputation_score":`...), *n.Reputation); !ok {
			return nil, errLivenessValue
		}
	}
	b = strconv.AppendInt(append(b, `,"completed_tasks_count":`...), n.CompletedTasks, 10)
	if n.SLAP95Ms != nil {
		b = strconv.AppendInt(append(b, `,"sla_p95_ms":`...), *n.SLAP95Ms, 10)
	}
	return append(b, '}'), nil
}
