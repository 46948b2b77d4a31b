package federation

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
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
	b = appendJSONString(b, d.Schema)
	b = append(b, `,"seed_did":`...)
	b = appendJSONString(b, d.SeedDID)
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
	b = appendJSONString(b, n.NodeID)
	b = strconv.AppendInt(append(b, `,"last_seen_ms":`...), n.LastSeenMs, 10)
	b = strconv.AppendBool(append(b, `,"available":`...), n.Available)
	var err error
	if n.Load != nil {
		if b, err = appendJSONFloat(append(b, `,"load":`...), *n.Load); err != nil {
			return nil, err
		}
	}
	b = strconv.AppendInt(append(b, `,"active_jobs":`...), int64(n.ActiveJobs), 10)
	if n.Reputation != nil {
		if b, err = appendJSONFloat(append(b, `,"reputation_score":`...), *n.Reputation); err != nil {
			return nil, err
		}
	}
	b = strconv.AppendInt(append(b, `,"completed_tasks_count":`...), n.CompletedTasks, 10)
	if n.SLAP95Ms != nil {
		b = strconv.AppendInt(append(b, `,"sla_p95_ms":`...), *n.SLAP95Ms, 10)
	}
	return append(b, '}'), nil
}

// appendJSONFloat is encoding/json's float64 format: shortest 'f', or 'e'
// with a trimmed exponent below 1e-6 and from 1e21.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errLivenessValue
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendJSONString appends s quoted; strings needing any escape (rare
// here: node ids are UUIDs) go through encoding/json for its exact rules.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
