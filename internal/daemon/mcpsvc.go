package daemon

import (
	"fmt"
	"os"
	"strings"

	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/route/mcp"
)

// setupMCP binds the MCP server (route/mcp) when mcp.enabled: its own
// loopback listener (mcp.listen), tools from this node's intents, the mesh
// peer table and the directories, every call through a router built like
// the admin call's (mesh peers, directories with consumer tokens, the
// local engine without a directory).
func (d *daemon) setupMCP() error {
	if !d.cfg.MCP.Enabled {
		return nil
	}
	key, err := readAPIKey(d.cfg.MCP.APIKeyFile)
	if err != nil {
		return err
	}
	r, err := d.newRouter()
	if err != nil {
		return fmt.Errorf("building the MCP router: %w", err)
	}
	cat := &mcp.Catalog{Mesh: d.mesh, Directories: d.clients, Local: func() []string {
		var out []string
		for _, c := range d.be.router.Capabilities() {
			out = append(out, c.Intent)
		}
		return out
	}}
	srv, err := mcp.New(mcp.Config{Router: r, Intents: cat.Intents, APIKey: key, OriginNode: d.id.NodeID(),
		Version: d.o.Version, Logger: d.o.Logs.Named("mcp")})
	if err != nil {
		return err
	}
	if err := srv.Listen(d.cfg.MCP.Listen); err != nil {
		return bindError("MCP server", d.cfg.MCP.Listen, "set mcp.listen (--mcp-listen ADDR) or turn MCP off (--no-mcp)", err)
	}
	d.mcp = srv
	return nil
}

// readAPIKey reads mcp.api_key_file ("" when unset): a private file
// (0600) holding at least 16 characters. Its failures are ErrConfig: only
// the operator can fix them.
func readAPIKey(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", configErrorf("mcp.api_key_file: %w", err)
	}
	if err := paths.CheckPrivate(path); err != nil {
		return "", configErrorf("mcp.api_key_file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if len(key) < 16 {
		return "", configErrorf("mcp.api_key_file %s holds no usable key (at least 16 characters)", path)
	}
	return key, nil
}
