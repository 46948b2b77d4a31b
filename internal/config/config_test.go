package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

var commentedKey = regexp.MustCompile(`(?m)^# ([a-z_]+ = .*)$`)

// uncomment turns every "# key = value" line of the template into a live line.
func uncomment(b []byte) []byte { return commentedKey.ReplaceAll(b, []byte("$1")) }

func TestDefaultFileParsesToDefaults(t *testing.T) {
	for _, p := range Profiles() {
		t.Run(p, func(t *testing.T) {
			text, err := DefaultFile(p)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := Defaults(p)
			// As written (keys commented out) the file yields the defaults.
			got, err := Parse(text)
			if err != nil {
				t.Fatalf("default file does not parse: %v\n%s", err, text)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("commented file: got %+v, want %+v", *got, want)
			}
			// With every key uncommented it still yields exactly the defaults:
			// the rendered values are the real defaults.
			got, err = Parse(uncomment(text))
			if err != nil {
				t.Fatalf("uncommented default file does not parse: %v", err)
			}
			norm := func(c *Config) {
				if c.Log.Levels == nil {
					c.Log.Levels = map[string]string{}
				}
				for _, s := range []*[]string{&c.Backend.Models, &c.Directory.URLs, &c.Mesh.Bootstrap, &c.Server.ACMEDomains, &c.HTTP.ACMEDomains} {
					if len(*s) == 0 {
						*s = nil
					}
				}
			}
			norm(got)
			norm(&want)
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("uncommented file: got %+v, want %+v", *got, want)
			}
		})
	}
}

// Every key of Config appears in the template, so the first-run file
// documents the whole schema.
func TestDefaultFileCoversEveryKey(t *testing.T) {
	def, _ := Defaults(ProfileHome)
	def.Log.Levels = map[string]string{"mesh": "debug"}
	def.Backend.Models = []string{"x"}
	def.Directory.URLs = []string{"x"}
	def.Mesh.Bootstrap = []string{"x"}
	b, err := toml.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	if err := toml.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	text, _ := DefaultFile(ProfileHome)
	var got map[string]any
	if err := toml.Unmarshal(uncomment(text), &got); err != nil {
		t.Fatal(err)
	}
	var missing []string
	var walk func(prefix string, want, have map[string]any)
	walk = func(prefix string, want, have map[string]any) {
		for k, v := range want {
			if prefix == "log.levels." {
				continue // a free-form map, shown as an example
			}
			hv, ok := have[k]
			if !ok {
				missing = append(missing, prefix+k)
				continue
			}
			if sub, ok := v.(map[string]any); ok {
				hsub, _ := hv.(map[string]any)
				walk(prefix+k+".", sub, hsub)
			}
		}
	}
	walk("", all, got)
	if len(missing) > 0 {
		t.Fatalf("template lacks keys: %v", missing)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string
		check   func(*testing.T, *Config)
	}{
		// The file overrides the profile's defaults; untouched keys keep them.
		{name: "override", doc: "version = 1\nprofile = \"test\"\n[node]\nmax_concurrent = 7\n[log.levels]\nmesh = \"debug\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Node.MaxConcurrent != 7 || c.Server.StaleAfter.D() != 3*time.Second || c.Log.Levels["mesh"] != "debug" {
					t.Fatalf("got %+v", c)
				}
			}},
		// Durations are Go duration strings.
		{name: "duration", doc: "version = 1\n[directory]\nbackoff_max = \"2m\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Directory.BackoffMax.D() != 2*time.Minute {
					t.Fatalf("got %v", c.Directory.BackoffMax.D())
				}
			}},
		// A missing version is refused: the file must say which schema it is.
		{name: "no version", doc: "profile = \"home\"\n", wantErr: "missing `version"},
		// A future version is refused rather than half-understood.
		{name: "future version", doc: "version = 2\n", wantErr: "not supported"},
		// Typos are errors with the key and line, never silently ignored.
		{name: "unknown key", doc: "version = 1\n[node]\nmax_concurent = 3\n", wantErr: "node.max_concurent (line 3)"},
		// Syntax errors carry a position.
		{name: "syntax", doc: "version = 1\n[node\n", wantErr: "line 2"},
		{name: "bad profile", doc: "version = 1\nprofile = \"laptop\"\n", wantErr: "unknown profile"},
		{name: "bad duration", doc: "version = 1\n[backend]\ntimeout = \"soon\"\n", wantErr: "invalid duration"},
		// Plaintext directories only in dev mode (iicp-dir.md §6 SEC-TLS-01).
		{name: "plaintext directory", doc: "version = 1\n[directory]\nurls = [\"http://d.example\"]\n", wantErr: "plaintext"},
		{name: "plaintext directory dev", doc: "version = 1\n[node]\ndev = true\n[directory]\nurls = [\"http://127.0.0.1:1\"]\n"},
		// The admin endpoint is loopback-only.
		{name: "admin public", doc: "version = 1\n[admin]\nlisten = \"0.0.0.0:0\"\n", wantErr: "admin.listen"},
		{name: "bad level", doc: "version = 1\n[log.levels]\nmesh = \"loud\"\n", wantErr: "log.levels.mesh"},
		{name: "bad subsystem", doc: "version = 1\n[log.levels]\nnetwork = \"debug\"\n", wantErr: "unknown subsystem"},
		{name: "disabled with urls", doc: "version = 1\n[directory]\ndisabled = true\nurls = [\"https://d.example\"]\n", wantErr: "directory.disabled"},
		{name: "concurrency", doc: "version = 1\n[node]\nmax_concurrent = 0\n", wantErr: "node.max_concurrent"},
		// An advert interval near the 90 s peer TTL could expire live peers.
		{name: "advert interval", doc: "version = 1\n[mesh]\nadvert_interval = \"45s\"\n", wantErr: "mesh.advert_interval"},
		{name: "half tls", doc: "version = 1\n[directory_server]\ntls_cert = \"c.pem\"\n", wantErr: "tls_cert/tls_key"},
		// Active probing: 5 min by default (iicp-dir.md §3.14), tunable, 0 off, never negative.
		{name: "probe interval default", doc: "version = 1\n",
			check: func(t *testing.T, c *Config) {
				if c.Server.ProbeInterval.D() != 5*time.Minute {
					t.Fatalf("got %v", c.Server.ProbeInterval.D())
				}
			}},
		{name: "probe interval", doc: "version = 1\n[directory_server]\nprobe_interval = \"10m\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Server.ProbeInterval.D() != 10*time.Minute {
					t.Fatalf("got %v", c.Server.ProbeInterval.D())
				}
			}},
		{name: "probe interval negative", doc: "version = 1\n[directory_server]\nprobe_interval = \"-1s\"\n", wantErr: "directory_server.probe_interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got err %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestLoadOrInit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	c, created, err := LoadOrInit(path, ProfileTest)
	if err != nil || !created {
		t.Fatalf("first run: created=%v err=%v", created, err)
	}
	if c.Profile != ProfileTest {
		t.Fatalf("profile %q", c.Profile)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file mode %v err %v", fi.Mode().Perm(), err)
	}
	if err := os.WriteFile(path, []byte("version = 1\nprofile = \"server\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, created, err = LoadOrInit(path, ProfileTest)
	if err != nil || created || c.Profile != ProfileServer {
		t.Fatalf("second run must read the existing file: %+v created=%v err=%v", c, created, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.toml")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestDurationText(t *testing.T) {
	for _, d := range []time.Duration{0, 500 * time.Millisecond, 90 * time.Second, 2 * time.Minute, 24 * time.Hour, 25*time.Hour + time.Second} {
		b, _ := Duration(d).MarshalText()
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back.D() != d {
			t.Fatalf("%v -> %q -> %v (%v)", d, b, back.D(), err)
		}
	}
	b, _ := Duration(24 * time.Hour).MarshalText()
	if string(b) != "24h" {
		t.Fatalf("24h rendered as %q", b)
	}
}
