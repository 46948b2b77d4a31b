package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/internal/config"
	"github.com/meshnode/meshnode/internal/daemon/admin"
)

func TestFileStoreRoundTripAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.json")
	fs := &fileStore{path: path}
	if _, ok, err := fs.Load("https://a.example"); ok || err != nil {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	c := dirclient.Credentials{NodeID: "n", NodeToken: "tok-a", IssuedAt: time.Unix(1, 0).UTC()}
	if err := fs.Save("https://a.example", c); err != nil {
		t.Fatal(err)
	}
	if err := fs.Save("https://b.example", dirclient.Credentials{NodeID: "n", NodeToken: "tok-b"}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := fs.Load("https://a.example")
	if err != nil || !ok || got.NodeToken != "tok-a" || !got.IssuedAt.Equal(c.IssuedAt) {
		t.Fatalf("load a: %+v %v %v", got.NodeID, ok, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials mode %v", fi.Mode().Perm())
	}
	// A credentials file other users can read is refused, not used.
	_ = os.Chmod(path, 0o644)
	if _, _, err := fs.Load("https://a.example"); err == nil {
		t.Fatal("world-readable credentials accepted")
	}
}

func TestOperatorTokenStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "operator.token")
	a, err := loadOrCreateSecret(path)
	if err != nil || len(a) != 64 {
		t.Fatalf("token %d chars, err %v", len(a), err)
	}
	b, err := loadOrCreateSecret(path)
	if err != nil || a != b {
		t.Fatal("operator token changed between runs")
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}

func TestChooseDirectoryMode(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*config.Config)
		mode    string
		wantDev bool
	}{
		// No directory configured: embedded, and the node runs in dev mode.
		{"embedded", func(*config.Config) {}, dirEmbedded, true},
		{"external", func(c *config.Config) { c.Directory.URLs = []string{"https://d.example"} }, dirExternal, false},
		{"disabled", func(c *config.Config) { c.Directory.Disabled = true }, dirDisabled, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := config.Defaults(config.ProfileHome)
			tc.mod(&cfg)
			d := &daemon{cfg: &cfg, log: discard()}
			d.chooseDirectoryMode()
			if d.dirMode != tc.mode || cfg.Node.Dev != tc.wantDev {
				t.Fatalf("mode %s dev %v", d.dirMode, cfg.Node.Dev)
			}
		})
	}
}

func TestParseBootstrap(t *testing.T) {
	ok := "/ip4/127.0.0.1/udp/9485/quic-v1/p2p/12D3KooWAbzDuC8akJnBndi4hQpnFV3X7uBcKPZ3iMDewCqFG4c4"
	if ais, err := parseBootstrap([]string{ok}); err != nil || len(ais) != 1 || len(ais[0].Addrs) != 1 {
		t.Fatalf("%v %v", ais, err)
	}
	for _, bad := range []string{"/ip4/127.0.0.1/udp/9485/quic-v1", "not-a-multiaddr"} {
		if _, err := parseBootstrap([]string{bad}); err == nil || !strings.Contains(err.Error(), "mesh.bootstrap") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// The start-up block names the directory as it is: in-process, joined
// (another meshnode's dev directory on the embedded address) or external,
// never "in-process" for a directory this process does not run.
func TestPrintBlockDirectoryLine(t *testing.T) {
	tests := []struct {
		name, mode string
		embedded   bool
		want, not  string
	}{
		{"in-process", dirEmbedded, true, "(in-process, dev mode)", "joined"},
		{"joined", dirEmbedded, false, "(joined the dev directory already running there, dev mode)", "in-process"},
		{"external", dirExternal, false, "directory    https://d.example\n", "in-process"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			cfg, _ := config.Defaults(config.ProfileTest)
			d := &daemon{cfg: &cfg, log: discard(), dirMode: tc.mode, be: &builtBackend{describe: "echo"},
				o: Options{Out: &out, Version: "test"}}
			if tc.embedded {
				d.embedded = &directory.Server{}
			}
			d.printBlock(admin.Runtime{NodeID: "n", HTTPURL: "http://127.0.0.1:1", Endpoint: "http://127.0.0.1:1",
				Directories: []string{map[bool]string{true: "https://d.example", false: "http://127.0.0.1:8010"}[tc.mode == dirExternal]}})
			if !strings.Contains(out.String(), tc.want) || strings.Contains(out.String(), tc.not) {
				t.Fatalf("block:\n%s", out.String())
			}
		})
	}
}
