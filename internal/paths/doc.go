// Package paths resolves where meshnode keeps its files: the config file in
// $XDG_CONFIG_HOME/meshnode and everything the node writes at run time
// (identity key, directory credentials, operator and admin tokens, admin
// endpoint address, the embedded directory's database) in
// $XDG_STATE_HOME/meshnode. One override, --home / MESHNODE_HOME, puts both
// under a single directory so several nodes can run side by side on one
// machine.
//
// Because the state directory holds secrets, EnsureDirs creates (or
// tightens) both directories to mode 0700, CheckPrivate refuses a secret
// file others can read, and WriteFileAtomic writes a file with the caller's
// mode via a temporary file and a rename, so a crash never leaves a
// truncated key behind. AcquireLock holds a lock file (flock) for the
// process's life so one home has one node and one directory at most.
//
// paths imports only the standard library and no module package.
package paths
