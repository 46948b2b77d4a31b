// Package logging builds meshnode's log/slog loggers: one output handler
// (text or JSON), a default level, and a level per subsystem
// (`[log.levels] mesh = "debug"`), so one noisy part can be turned up
// without drowning the rest.
//
// Loggers for packages that name themselves (node, mesh, directory add their
// own "subsystem" attribute) come from For; loggers for packages that do not
// come from Named, which adds the attribute. Payloads and tokens are never
// logged anywhere: that is the callers' rule (SEC-LOG-01, checked statically
// by internal/archtest), not this package's.
//
// logging imports only the standard library and no module package.
package logging
