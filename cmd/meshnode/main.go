// Command meshnode runs an IICP node (`meshnode up`), a directory
// (`meshnode directory`), and the short admin commands beside them
// (call, status, peers, token, id, paths, version, completion).
//
// This package is the CLI only: flags, their MESHNODE_* environment twins,
// config loading and output. Everything it runs is composed in
// internal/app. Exit codes are documented in docs/cli.md.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
