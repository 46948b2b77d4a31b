package daemon

import (
	"context"
	"fmt"
	"os"

	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/route/openai"
	"github.com/meshnode/meshnode/wire"
)

// catalogIntents are the intents GET /v1/models lists models for.
var catalogIntents = []string{wire.IntentChat, wire.IntentCompletion, wire.IntentEmbedding}

// setupOpenAI builds and binds the OpenAI-compatible API (openai.*): its
// own router over this node's engine, the mesh and each directory.
func (d *daemon) setupOpenAI() error {
	if !d.cfg.OpenAI.Enabled {
		return nil
	}
	key := ""
	if env := d.cfg.OpenAI.APIKeyEnv; env != "" {
		key = os.Getenv(env)
	}
	finders, offerers := d.gatewayFinders()
	r, err := route.New(finders, d.gatewayRouteOptions()...)
	if err != nil {
		return fmt.Errorf("building the OpenAI API router: %w", err)
	}
	catalog := func(ctx context.Context) []route.Model { return route.Models(ctx, catalogIntents, offerers...) }
	srv, err := openai.New(r, catalog,
		openai.WithAddr(d.cfg.OpenAI.Listen),
		openai.WithAPIKey(key),
		openai.WithOrigin(d.id.NodeID()),
		openai.WithAllowPlaintext(d.cfg.OpenAI.AllowPlaintext),
		openai.WithShutdownTimeout(d.cfg.Node.ShutdownTimeout.D()),
		openai.WithLogger(d.o.Logs.Named("openai")))
	if err != nil {
		return fmt.Errorf("%w (env %s)", err, d.cfg.OpenAI.APIKeyEnv)
	}
	if err := srv.Listen(); err != nil {
		return fmt.Errorf("%w (choose another address with --openai, e.g. 127.0.0.1:0, or turn it off with --no-openai)", err)
	}
	d.openai = srv
	return nil
}

// gatewayFinders: mesh peers, then each directory; this node is tried
// first when it is the best choice (route.WithLocal, gatewayRouteOptions).
func (d *daemon) gatewayFinders() ([]route.Finder, []route.Offerer) {
	var finders []route.Finder
	offerers := []route.Offerer{route.LocalOffer{NodeID: d.id.NodeID(), Caps: d.be.router.Capabilities}}
	if d.mesh != nil {
		mf := route.MeshFinder{M: d.mesh}
		finders, offerers = append(finders, mf), append(offerers, mf)
	}
	for _, c := range d.clients {
		df := route.DirectoryFinder{C: c}
		finders, offerers = append(finders, df), append(offerers, df)
	}
	return finders, offerers
}

func (d *daemon) gatewayRouteOptions() []route.Option {
	opts := []route.Option{route.WithCredential(d.credential), route.WithLogger(d.log),
		route.WithTransport(route.PathHTTP, route.HTTPTransport{HTTP: d.taskClient})}
	opts = append(opts, d.observerOption()...)
	if d.mesh != nil {
		opts = append(opts, route.WithTransport(route.PathMesh, route.MeshTransport{M: d.mesh}),
			route.WithLocal(localTransport{d}, d.localValue))
	} else {
		opts = append(opts, route.WithLocal(localTransport{d}, d.localServes))
	}
	return opts
}

// localServes is the local value without a mesh to rank against: this
// node serves the call (intent and pinned model) and holds a token its
// engine accepts.
func (d *daemon) localServes(call *wire.Call) (float64, bool) {
	if d.nodeToken() == "" {
		return 0, false
	}
	if _, _, err := d.be.router.Resolve(call.Intent, call.Model); err != nil {
		return 0, false
	}
	return 1, true
}
