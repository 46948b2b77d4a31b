// Package config is meshnode's typed, versioned configuration: one TOML file
// (version = 1), every default listed once in defaults.go, three profiles
// (home, server, test) that change only what differs, strict decoding (an
// unknown key is an error with its line, not a silent typo), and
// validation that names the offending key.
//
// Why TOML: the file is written by hand by operators, so it must allow
// comments (the first-run file documents every key in place), have one
// obvious way to write each value (unlike YAML's implicit typing, where `no`
// becomes false and `1.10` a float), and map one-to-one onto typed Go
// structs. pelletier/go-toml/v2 decodes strictly with line numbers.
//
// Precedence, lowest first: profile defaults, the config file, then runtime
// overrides (command-line flags and their MESHNODE_* environment twins),
// which cmd/meshnode applies to the loaded Config and which are never
// written back to the file.
//
// config imports only the standard library and go-toml; it must not import
// any module package, so every layer can read a Config without a cycle.
package config
