package archtest

import (
	"fmt"
	"testing"
)

// findings are the violations one check found, each a complete message
// saying where and what to change.
type findings []string

func (f *findings) add(format string, args ...any) { *f = append(*f, fmt.Sprintf(format, args...)) }

// report fails t once per finding.
func report(t *testing.T, fs findings) {
	t.Helper()
	for _, f := range fs {
		t.Error(f)
	}
}

// The guardrails over this repository, one test per rule.

func TestLayers_EveryPackageClassified(t *testing.T) {
	report(t, checkEveryPackageClassified(loadModule(t)))
}
func TestLayers_ModuleImports(t *testing.T)       { report(t, checkModuleImports(loadModule(t))) }
func TestLayers_NoOneImportsTheRoot(t *testing.T) { report(t, checkNoOneImportsTheRoot(loadModule(t))) }
func TestStyle_NoDefaultLogger(t *testing.T)      { report(t, checkNoDefaultLogger(loadModule(t))) }
func TestLayers_InternalHoldsRootAndLeaves(t *testing.T) {
	report(t, checkInternalHoldsRootAndLeaves(loadModule(t)))
}
func TestLayers_HeavyDependencies(t *testing.T)  { report(t, checkHeavyDependencies(loadModule(t))) }
func TestLayers_WireIsPure(t *testing.T)         { report(t, checkWireIsPure(loadModule(t))) }
func TestLayers_NodeHasNoTransport(t *testing.T) { report(t, checkNodeHasNoTransport(loadModule(t))) }
func TestLayers_TokenIsPure(t *testing.T)        { report(t, checkTokenIsPure(loadModule(t))) }
func TestLayers_BackendIsHTTPClientOnly(t *testing.T) {
	report(t, checkBackendIsHTTPClientOnly(loadModule(t)))
}
func TestStyle_DocGo(t *testing.T)              { report(t, checkDocGoFiles(loadModule(t))) }
func TestStyle_FileLength(t *testing.T)         { report(t, checkFileLength(loadModule(t))) }
func TestStyle_FunctionLength(t *testing.T)     { report(t, checkFunctionLength(loadModule(t))) }
func TestStyle_NoPanicInLibraries(t *testing.T) { report(t, checkNoPanicInLibraries(loadModule(t))) }
func TestStyle_NoGlobalHTTPServer(t *testing.T) { report(t, checkNoGlobalHTTPServer(loadModule(t))) }
func TestStyle_GoleakWhereGoroutinesStart(t *testing.T) {
	report(t, checkGoleakWhereGoroutinesStart(loadModule(t)))
}

// TestSEC_LOG_01_NoSecretsInLogCalls is the static half of SEC-LOG-01 (the
// runtime canary lives in dirbridge/httpapi).
func TestSEC_LOG_01_NoSecretsInLogCalls(t *testing.T) { report(t, checkNoSecretsInLogs(loadModule(t))) }
func TestSEC_LOG_01_NoSecretsInErrors(t *testing.T)   { report(t, checkNoSecretsInErrors(loadModule(t))) }
