package archtest

// Known exceptions, each with the reason it stands. The tests fail on an
// entry that is no longer needed, so these lists only shrink. "active" means
// the package's engineer was still changing it when the guardrails went in,
// so the review did not edit it; its owner should clear the entry.

// allowLongFuncs: "file:Func" → why it is longer than maxFuncLines.
var allowLongFuncs = map[string]string{}

// allowNoDocGo: package → why it has no doc.go yet (each keeps its package
// comment in its main file today).
var allowNoDocGo = map[string]string{}

// allowNoGoleak: package → why its goroutines are not leak-checked yet.
var allowNoGoleak = map[string]string{}
