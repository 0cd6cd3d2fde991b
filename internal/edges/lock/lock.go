// Package lock serialises symroute's runs on one root: generate and apply take the same lock, so two runs never
// interleave their files, and a run may clean up what an interrupted one left.
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/symroute/symroute/internal/edges/rootfs"
)

// Dir and Name place the lock file under the root: /run is cleared at boot, as a lock should be. It has a
// directory of its own so that a container (the node agent's) can share the lock with the host's CLI by mounting
// that directory alone, not the host's whole /run with every runtime's socket in it.
const (
	Dir  = "run/symroute"
	Name = "symroute.lock"
)

// DefaultWait is how long a run waits for another to finish before giving up.
const DefaultWait = 30 * time.Second

// poll is how often a waiter tries again; flock has no wait with a deadline.
const poll = 50 * time.Millisecond

// Take takes the exclusive lock of root, waiting up to wait for a holder to finish; waiting, when not nil, is
// told once whom it waits for. The lock file is opened without following a link and must be a regular file with
// one link, since the holder writes its pid into it. release removes the file and drops the lock, so a --root
// tree (a fleet's golden files in git) keeps no trace of the run.
func Take(ctx context.Context, root *rootfs.Root, wait time.Duration, waiting func(holder string)) (release func(), err error) {
	dir, err := root.OpenDir(Dir, true)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	told, vanishedOnce := false, false
	for {
		if err := ctx.Err(); err != nil {
			dir.Close()
			return nil, err
		}
		// A lock file removed under this run (its holder released it) is taken again at once; one that keeps
		// vanishing past the wait (a file that is not the directory's any more, as a bind-mounted file left on a
		// deleted copy would be) is an error, not a spin.
		vanished := func() error {
			if vanishedOnce {
				time.Sleep(poll) // once is a release that crossed this run's open; again and again is not
			}
			vanishedOnce = true
			if time.Now().Before(deadline) {
				return nil
			}
			dir.Close()
			return fmt.Errorf("lock %s: the file keeps being removed as it is taken; is %s shared as a directory?", dir.Path(Name), Dir)
		}
		f, err := dir.OpenLock(Name)
		if errors.Is(err, rootfs.ErrRemoved) {
			if err := vanished(); err != nil {
				return nil, err
			}
			continue // the holder removed it as this run opened it
		}
		if err != nil {
			dir.Close()
			return nil, fmt.Errorf("lock: %w", err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			if !dir.SameFile(f, Name) {
				// The holder removed the file after this run opened it; the lock is on a file nobody else
				// will open. Try again with the file now there.
				f.Close()
				if err := vanished(); err != nil {
					return nil, err
				}
				continue
			}
			pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
			if _, err := f.WriteAt(pid, 0); err != nil {
				f.Close()
				dir.Close()
				return nil, fmt.Errorf("lock %s: %w", dir.Path(Name), err)
			}
			f.Truncate(int64(len(pid))) // a longer pid from an earlier holder is cut; waiters only read it
			return func() {
				// Remove before unlocking: a waiter that gets the lock on the removed file sees it is gone.
				dir.Remove(Name)
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
				dir.Close()
			}, nil
		}
		holder := "another symroute"
		if pid := readPid(f); pid != "" {
			holder += " (pid " + pid + ")"
		}
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			dir.Close()
			return nil, fmt.Errorf("lock %s: %w", dir.Path(Name), err)
		}
		if !told && waiting != nil {
			waiting(holder)
			told = true
		}
		if !time.Now().Before(deadline) {
			dir.Close()
			return nil, fmt.Errorf("%s still holds %s after %v; wait for it to finish, or stop it", holder, dir.Path(Name), wait)
		}
		select {
		case <-ctx.Done():
			dir.Close()
			return nil, ctx.Err()
		case <-time.After(min(poll, time.Until(deadline))):
		}
	}
}

func readPid(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid := strings.TrimSpace(string(buf[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		return ""
	}
	return pid
}
