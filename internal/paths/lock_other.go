//go:build !unix

package paths

import "os"

// tryLock: without flock the lock is advisory only (the PID is still written).
func tryLock(*os.File) (bool, error) { return false, nil }

func unlock(*os.File) error { return nil }
