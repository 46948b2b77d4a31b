package app

import (
	"context"
	"fmt"
	"io"

	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/internal/config"
	"github.com/meshnode/meshnode/internal/logging"
	"github.com/meshnode/meshnode/internal/paths"
)

// DirectoryOptions configures `meshnode directory`.
type DirectoryOptions struct {
	Paths   paths.Paths
	Config  *config.Config
	Dev     bool
	Resolve []string
	Version string
	Out     io.Writer
	Logs    *logging.Logs
	Notify  func(string)
}

// RunDirectory runs a standalone IICP-DIR directory until ctx ends.
func RunDirectory(ctx context.Context, o DirectoryOptions) error {
	if err := o.Paths.EnsureDirs(); err != nil {
		return err
	}
	s := o.Config.Server
	db := s.DB
	if db == "" {
		db = o.Paths.DirectoryDB
	}
	srv, err := directory.New(directory.Config{
		Listen:            s.Listen,
		DBPath:            db,
		StateDir:          o.Paths.StateDir,
		Dev:               o.Dev,
		TLSCertFile:       s.TLSCert,
		TLSKeyFile:        s.TLSKey,
		Resolve:           o.Resolve,
		HeartbeatInterval: s.HeartbeatInterval.D(),
		StaleAfter:        s.StaleAfter.D(),
		Version:           o.Version,
	}, directory.WithLogger(o.Logs.For("directory")))
	if err != nil {
		return err
	}
	scheme := "https"
	if !srv.TLS() {
		scheme = "http"
	}
	u := scheme + "://" + srv.Addr().String()
	if o.Out != nil {
		fmt.Fprintf(o.Out, "meshnode directory %s listening on %s\n  database  %s\n", o.Version, u, db)
		if o.Dev {
			fmt.Fprintf(o.Out, "  dev mode: plaintext, loopback only, private node endpoints allowed\n")
		}
		fmt.Fprintf(o.Out, "next: meshnode up --directory %s%s\n", u, map[bool]string{true: " --dev"}[o.Dev])
	}
	if o.Notify != nil {
		o.Notify("READY=1")
		o.Notify("STATUS=directory listening on " + u)
	}
	return srv.Serve(ctx)
}
