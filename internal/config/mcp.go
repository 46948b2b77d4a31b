package config

import "net"

// DefaultMCPListen is the MCP endpoint's default address (home and server
// profiles): loopback, so only local clients (Claude Desktop, an agent on
// this machine) reach it.
const DefaultMCPListen = "127.0.0.1:8093"

// MCP is the node's MCP server (route/mcp): tools are the intents the mesh
// serves, each call one task through the node's router.
type MCP struct {
	// Enabled serves MCP (default true).
	Enabled bool `toml:"enabled"`
	// Listen is host:port, served at /mcp. A loopback address needs no key;
	// any other needs APIKeyFile.
	Listen string `toml:"listen"`
	// APIKeyFile names a file (mode 0600) holding the key MCP clients send
	// as "Authorization: Bearer <key>". Required off loopback; when set on
	// loopback, the key is required there too.
	APIKeyFile string `toml:"api_key_file"`
}

// validateMCP checks the [mcp] table.
func (c *Config) validateMCP(bad func(string, string, ...any)) {
	if !c.MCP.Enabled {
		return
	}
	host, _, err := net.SplitHostPort(c.MCP.Listen)
	switch {
	case err != nil:
		bad("mcp.listen", "must be host:port, got %q", c.MCP.Listen)
	case !isLoopback(host) && c.MCP.APIKeyFile == "":
		bad("mcp.listen", "%q is not loopback: set mcp.api_key_file (MCP clients then send Authorization: Bearer <key>)", c.MCP.Listen)
	}
}
