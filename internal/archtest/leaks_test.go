package archtest

import (
	"go/ast"
	"go/token"
	"strconv"
	"strings"
)

// Task payloads, results, prompts and credentials never go to a log
// (preamble; STYLE.md §11). These lists catch the obvious ways: a log
// attribute named after one, or a field of that name passed as a value.
var (
	secretLogKeys = []string{"payload", "body", "prompt", "messages", "content", "token", "node_token",
		"consumer_token", "authorization", "api_key", "apikey", "secret", "password", "iicp_conf", "plaintext"}
	secretFields = []string{"Payload", "Body", "Prompt", "Messages", "Content", "Token", "NodeToken",
		"ConsumerToken", "Authorization", "APIKey", "Secret", "Password", "Conf", "Plaintext", "Result"}
	logMethods = map[string]bool{"Debug": true, "Info": true, "Warn": true, "Error": true,
		"DebugContext": true, "InfoContext": true, "WarnContext": true, "ErrorContext": true, "Log": true}
)

// checkNoSecretsInLogs looks at every slog-style call (a Debug/Info/Warn/
// Error/Log method whose message is a string literal) in non-test code.
func checkNoSecretsInLogs(m *module) (out findings) {
	eachNonTestCall(m, isLogCall, func(call *ast.CallExpr) {
		for _, pos := range secretLogArgs(call) {
			out.add("%s: a log call passes what looks like a task payload, result or credential; log its size, "+
				"a hash or an ID instead (payloads and tokens never go to logs)", m.pos(pos))
		}
	})
	return out
}

// checkNoSecretsInErrors: an error message travels to logs and, for
// *wire.Error, to the caller; fmt.Errorf, wire.Errorf and wire.NewError must
// not be handed a payload, result or credential field.
func checkNoSecretsInErrors(m *module) (out findings) {
	eachNonTestCall(m, isErrorCtor, func(call *ast.CallExpr) {
		for _, pos := range secretLogArgs(&ast.CallExpr{Args: call.Args[1:]}) {
			out.add("%s: an error message is built from what looks like a task payload, result or credential; "+
				"name the field or step instead, never its value", m.pos(pos))
		}
	})
	return out
}

// eachNonTestCall calls fn for every call expression in non-test code that
// match accepts.
func eachNonTestCall(m *module, match func(*ast.CallExpr) bool, fn func(*ast.CallExpr)) {
	for _, p := range m.sortedPkgs() {
		for _, f := range p.files {
			if f.test {
				continue
			}
			ast.Inspect(f.ast, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok && match(call) {
					fn(call)
				}
				return true
			})
		}
	}
}

func isErrorCtor(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || len(call.Args) < 2 {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && ((x.Name == "fmt" && sel.Sel.Name == "Errorf") ||
		(x.Name == "wire" && (sel.Sel.Name == "Errorf" || sel.Sel.Name == "NewError")))
}

func isLogCall(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || !logMethods[sel.Sel.Name] || len(call.Args) == 0 {
		return false
	}
	for _, a := range call.Args[:min(3, len(call.Args))] {
		if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			return true
		}
	}
	return false
}

// secretLogArgs returns the positions of suspicious attribute keys and
// values among the call's arguments.
func secretLogArgs(call *ast.CallExpr) []token.Pos {
	var out []token.Pos
	for _, a := range call.Args {
		switch x := a.(type) {
		case *ast.BasicLit:
			if k, err := strconv.Unquote(x.Value); err == nil && x.Kind == token.STRING && isSecretKey(k) {
				out = append(out, x.Pos())
			}
		default:
			ast.Inspect(a, func(n ast.Node) bool {
				switch y := n.(type) {
				case *ast.CallExpr:
					// len(x.Payload) logs a size, which is fine.
					if id, ok := y.Fun.(*ast.Ident); ok && (id.Name == "len" || id.Name == "cap") {
						return false
					}
				case *ast.SelectorExpr:
					if isSecretField(y.Sel.Name) {
						out = append(out, y.Pos())
					}
				}
				return true
			})
		}
	}
	return out
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretLogKeys {
		if k == s {
			return true
		}
	}
	return false
}

func isSecretField(name string) bool {
	for _, s := range secretFields {
		if name == s {
			return true
		}
	}
	return false
}
