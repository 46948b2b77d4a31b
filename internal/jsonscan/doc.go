// Package jsonscan validates and compacts JSON in one hand-written pass,
// for the task path's hot spots (issue 11 item 9): a node checks every
// payload and backend answer (Valid) and copies every result into its
// RESPONSE (AppendCompact). Both agree with encoding/json byte for byte
// (json.Valid, json.Compact; FuzzValid, FuzzAppendCompact), and
// AppendCompact declines what it does not handle rather than guess.
// AppendString and AppendFloat write a string and a float64 exactly as
// json.Marshal does (FuzzAppendString, FuzzAppendFloat), for the
// hand-written encoders of the RESPONSE, the backend request and the
// replicas' liveness digest.
//
// jsonscan imports only the standard library and no module package, so
// node/backend, dirbridge/httpapi and the federation can share it.
package jsonscan
