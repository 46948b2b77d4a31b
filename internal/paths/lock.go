package paths

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Lock file names: one per role, so a node and a directory may share a home
// while two nodes (or two directories) may not.
const (
	NodeLockFile      = "node.lock"
	DirectoryLockFile = "directory.lock"
)

// LockedError reports a lock another live process holds.
type LockedError struct {
	Path string
	// PID is the holder's process ID as it wrote it (0 when unreadable).
	PID int
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("process %d", e.PID)
	}
	return fmt.Sprintf("%s is held by %s", e.Path, who)
}

// ErrLocked matches every *LockedError with errors.Is.
var ErrLocked = errors.New("lock held by another process")

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is an exclusive lock file held for a process's life (the kernel
// releases it when the process dies, so a crash leaves no stale lock).
type Lock struct {
	f *os.File
}

// AcquireLock takes the exclusive lock at path without waiting and writes
// this process's PID into it. A lock held elsewhere returns *LockedError
// naming the holder's PID.
func AcquireLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if held {
		b, _ := os.ReadFile(path)
		f.Close()
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return nil, &LockedError{Path: path, PID: pid}
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("writing lock file: %w", err)
		}
	}
	return &Lock{f: f}, nil
}

// Release drops the lock. The file stays: removing it would race with a
// process that opened it a moment before.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = unlock(l.f)
	err := l.f.Close()
	l.f = nil
	return err
}
