// Package daemon is meshnode's one composition root: the only place that knows
// every concrete type. It builds the engine, backends, the HTTP bridge, the
// directory client, the embedded directory and the mesh, and runs them as
// Serve(ctx) error services; shutdown is cancelling the context.
package daemon
