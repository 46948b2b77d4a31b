// Package httperr reduces errors from net/http clients to fixed, log-safe
// descriptions. net/http quotes raw response bytes in some transport errors
// ("malformed HTTP response %q", "malformed MIME header line: …"), and a
// peer's bytes may echo a task payload or a token, while these errors end up
// in logs and in messages shown to operators (SEC-LOG-01). Transport keeps
// only the class of the failure in the text and the cause behind Unwrap, so
// errors.Is/As (context.Canceled, net.Error timeouts) still work.
//
// httperr imports only the standard library and no module package, so every
// HTTP client in the module (dirbridge/dirclient, node/backend) can share it.
package httperr
