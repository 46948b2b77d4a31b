package directory

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// dbFileMode is the mode of every SQLite file the directory and its
// federation log keep: they hold the directory's signing key, token hashes
// and the token-index secret, so only the owner may read them.
const dbFileMode = 0o600

// SecureDBFile creates the SQLite file at path with mode 0600 if it does
// not exist (SQLite gives the -wal and -shm files it creates later the
// mode of the main file) and narrows an existing database and its -wal,
// -shm and -journal files to 0600 (a file made by an earlier version may
// be 0644). Call it before opening the database.
func SecureDBFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, dbFileMode)
	if err != nil {
		return fmt.Errorf("creating database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("creating database file: %w", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Chmod(p, dbFileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restricting database file mode: %w", err)
		}
	}
	return nil
}
