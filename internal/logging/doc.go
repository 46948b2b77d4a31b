// Package logging builds meshnode's log/slog loggers: one output handler
// (text or JSON), a default level, and a level per subsystem
// (`[log.levels] mesh = "debug"`), so one noisy part can be turned up
// without drowning the rest.
//
// Every logger from For carries subsystem=<name>, and the names printed are
// exactly those [log.levels] accepts (config.Subsystems); packages label
// their inner parts with a "component" attribute (engine, httpapi,
// federation-seed...). libp2p's own lines arrive through Handler("libp2p"). Payloads and tokens are never
// logged anywhere: that is the callers' rule (SEC-LOG-01, checked statically
// by internal/archtest), not this package's.
//
// logging imports only the standard library and no module package.
package logging
