package paths

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// AppName is the directory name under the XDG base directories.
const AppName = "meshnode"

// EnvHome is the environment twin of --home.
const EnvHome = "MESHNODE_HOME"

// Paths is every location meshnode reads or writes.
type Paths struct {
	// Home is the --home / MESHNODE_HOME override ("" when XDG paths apply).
	Home string `json:"home,omitempty"`
	// ConfigDir holds config.toml.
	ConfigDir string `json:"config_dir"`
	// StateDir holds the identity, credentials and runtime files (mode 0700).
	StateDir string `json:"state_dir"`

	// ConfigFile is the default TOML config file.
	ConfigFile string `json:"config_file"`
	// IdentityKey is the node's Ed25519 private key (PEM PKCS#8, 0600).
	IdentityKey string `json:"identity_key"`
	// Credentials holds the directory-issued node tokens per directory (0600).
	Credentials string `json:"credentials"`
	// Membership holds the directory keys and this node's mesh membership
	// credential (0600), so the mesh works across a restart while the
	// directory is down.
	Membership string `json:"membership"`
	// OperatorToken is the locally generated token a node without a
	// directory accepts in auth.node_token (0600).
	OperatorToken string `json:"operator_token"`
	// OperatorDelegation is the operator_delegation `meshnode operator
	// delegate` signed for this node (sent in REGISTER; never the operator
	// key, which lives apart).
	OperatorDelegation string `json:"operator_delegation"`
	// NodeKeyBinding is the signed statement that binds this node's key to
	// an older node_id (after `meshnode identity rotate` or `meshnode
	// operator recover`); absent, the node_id derives from the key.
	NodeKeyBinding string `json:"node_key_binding"`
	// Runtime describes the running node: pid, admin URL, HTTP bridge URL,
	// directory URLs and mesh addresses. Clients on the same machine read it
	// to find the node; tests read it to learn the ports bound to :0.
	Runtime string `json:"runtime"`
	// AdminToken authenticates the loopback admin endpoint (0600).
	AdminToken string `json:"admin_token"`
	// DirectoryDB is the embedded (dev-mode) directory's SQLite database.
	DirectoryDB string `json:"directory_db"`
}

// Env is how Resolve reads the environment (os.Getenv in production; a map
// in tests so they never depend on the machine's variables).
type Env func(string) string

// Resolve computes the paths. home, when non-empty, wins; then
// MESHNODE_HOME; then the XDG base directories, falling back to
// ~/.config and ~/.local/state as the XDG spec prescribes.
func Resolve(home string, env Env) (Paths, error) {
	if env == nil {
		env = os.Getenv
	}
	if home == "" {
		home = env(EnvHome)
	}
	if home != "" {
		abs, err := filepath.Abs(home)
		if err != nil {
			return Paths{}, fmt.Errorf("resolving home %q: %w", home, err)
		}
		return build(abs, abs, abs), nil
	}
	cfg, err := xdgDir(env, "XDG_CONFIG_HOME", ".config")
	if err != nil {
		return Paths{}, err
	}
	state, err := xdgDir(env, "XDG_STATE_HOME", filepath.Join(".local", "state"))
	if err != nil {
		return Paths{}, err
	}
	return build("", filepath.Join(cfg, AppName), filepath.Join(state, AppName)), nil
}

// xdgDir returns $name when it is an absolute path (relative values are
// invalid per the XDG base directory spec and ignored), else $HOME/fallback.
func xdgDir(env Env, name, fallback string) (string, error) {
	if v := env(name); v != "" && filepath.IsAbs(v) {
		return v, nil
	}
	home := env("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no %s and no home directory: %w", name, err)
		}
		home = h
	}
	return filepath.Join(home, fallback), nil
}

func build(home, cfg, state string) Paths {
	return Paths{
		Home:               home,
		ConfigDir:          cfg,
		StateDir:           state,
		ConfigFile:         filepath.Join(cfg, "config.toml"),
		IdentityKey:        filepath.Join(state, "identity.key"),
		Credentials:        filepath.Join(state, "credentials.json"),
		Membership:         filepath.Join(state, "membership.json"),
		OperatorToken:      filepath.Join(state, "operator.token"),
		OperatorDelegation: filepath.Join(state, "operator-delegation.json"),
		NodeKeyBinding:     filepath.Join(state, "node-key-binding.json"),
		Runtime:            filepath.Join(state, "runtime.json"),
		AdminToken:         filepath.Join(state, "admin.token"),
		DirectoryDB:        filepath.Join(state, "directory.db"),
	}
}

// EnsureDirs creates the config and state directories (0700). An existing
// state directory readable by others is tightened to 0700 because it holds
// the identity key and tokens.
func (p Paths) EnsureDirs() error {
	for _, d := range []string{p.ConfigDir, p.StateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	fi, err := os.Stat(p.StateDir)
	if err != nil {
		return fmt.Errorf("checking state dir: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(p.StateDir, 0o700); err != nil {
			return fmt.Errorf("restricting state dir: %w", err)
		}
	}
	return nil
}

// ErrInsecure reports a secret file other users can read.
var ErrInsecure = errors.New("file is readable by other users; run chmod 600")

// CheckPrivate returns ErrInsecure when the file at path grants any
// permission to group or others (the ssh rule for private keys).
func CheckPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: %w", filepath.Base(path), ErrInsecure)
	}
	return nil
}

// WriteFileAtomic writes data to path with mode perm via a temporary file in
// the same directory and a rename, so a crash never leaves a truncated
// credential or key behind.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("creating temp file: %w", err)
	}
	tmp := f.Name()
	cleanup := func() { _ = os.Remove(tmp) }
	if err := f.Chmod(perm); err != nil {
		f.Close()
		cleanup()
		return fmt.Errorf("chmod temp file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		cleanup()
		return fmt.Errorf("writing temp file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		cleanup()
		return fmt.Errorf("syncing temp file: %w", err)
	}
	if err := f.Close(); err != nil {
		cleanup()
		return fmt.Errorf("closing temp file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		cleanup()
		return fmt.Errorf("renaming into place: %w", err)
	}
	return nil
}
