package lock

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/edges/rootfs"
	_ "github.com/symroute/symroute/internal/tools/golden"
)

func openRoot(t *testing.T, dir string) *rootfs.Root {
	t.Helper()
	r, err := rootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestLockExcludesAndNamesTheHolder: a second taker is refused (naming the holder's pid) while the first holds
// the lock, and a waiter gets it as soon as the holder lets go. No step depends on timing: the waiter tells when
// it waits, and the deadlines are generous.
func TestLockExcludesAndNamesTheHolder(t *testing.T) {
	dir := t.TempDir()
	root := openRoot(t, dir)
	release, err := Take(context.Background(), root, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, Dir, Name)); strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want our pid", data)
	}
	var told string
	_, err = Take(context.Background(), root, 0, func(holder string) { told = holder })
	if err == nil || !strings.Contains(err.Error(), "still holds") || !strings.Contains(told, "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: err %v, told %q", err, told)
	}
	waiting := make(chan struct{})
	got := make(chan error)
	go func() {
		release2, err := Take(context.Background(), root, time.Minute, func(string) { close(waiting) })
		if err == nil {
			release2()
		}
		got <- err
	}()
	<-waiting
	release()
	if err := <-got; err != nil {
		t.Fatalf("waiting for the lock: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, Dir, Name)); !os.IsNotExist(err) {
		t.Errorf("the lock file outlived its holders: %v", err)
	}
}

// TestLockManyTakers: takers racing on one root never hold the lock at once, although each holder removes the
// lock file when it lets go.
func TestLockManyTakers(t *testing.T) {
	root := openRoot(t, t.TempDir())
	var holders, overlaps atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				release, err := Take(context.Background(), root, time.Minute, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if holders.Add(1) > 1 {
					overlaps.Add(1)
				}
				holders.Add(-1)
				release()
			}
		}()
	}
	wg.Wait()
	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d times two takers held the lock at once", n)
	}
}

// TestLockRefusesLinks: a link at the lock's place, or at the directory holding it, is refused and its target
// left untouched; so is a lock file with a second hard link.
func TestLockRefusesLinks(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(outside, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, setup := range map[string]func(root string) error{
		"file link": func(root string) error {
			os.MkdirAll(filepath.Join(root, Dir), 0o755)
			return os.Symlink(outside, filepath.Join(root, Dir, Name))
		},
		"directory link": func(root string) error {
			os.MkdirAll(filepath.Dir(filepath.Join(root, Dir)), 0o755)
			return os.Symlink(filepath.Dir(outside), filepath.Join(root, Dir))
		},
		"hard link": func(root string) error {
			os.MkdirAll(filepath.Join(root, Dir), 0o755)
			return os.Link(outside, filepath.Join(root, Dir, Name))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := setup(dir); err != nil {
				t.Fatal(err)
			}
			if release, err := Take(context.Background(), openRoot(t, dir), 0, nil); err == nil {
				release()
				t.Fatal("took a lock through a link")
			}
			if data, _ := os.ReadFile(outside); string(data) != "keep me\n" {
				t.Errorf("the link's target changed: %q", data)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(outside), Name)); err == nil {
				t.Errorf("a lock file was created outside the root")
			}
		})
	}
}
