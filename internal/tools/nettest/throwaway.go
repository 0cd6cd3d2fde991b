package nettest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Throwaway is a root file system for one test made of this machine's own root and a layer of the test's: every
// command runs chrooted into an overlay of / with that layer on top, in a mount namespace of its own, so a
// package installed or purged there changes the layer and never the machine (tests never
// install or purge on the host). Paths given to Bind are the machine's own inside, for the files the test shares
// with the processes it runs outside (a networkd's configuration, a bus socket).
type Throwaway struct {
	// Upper holds what the commands changed: new and changed files, and whiteouts for removed ones.
	Upper string
	work  string
	binds []string
}

// NewThrowaway makes the layer in a temporary directory, removed when the test ends.
func NewThrowaway(t T) *Throwaway {
	t.Helper()
	dir, err := os.MkdirTemp("", "symroute-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	o := &Throwaway{Upper: filepath.Join(dir, "upper"), work: filepath.Join(dir, "work")}
	for _, d := range []string{o.Upper, o.work, filepath.Join(dir, "merged")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// Bind makes the machine's paths visible, writable and shared, inside.
func (o *Throwaway) Bind(paths ...string) { o.binds = append(o.binds, paths...) }

// Run runs script with sh inside the throwaway root, in network namespace ns when it is not nil, with env added.
// It returns the combined output and the error.
func (o *Throwaway) Run(ns *Netns, env []string, script string) (string, error) {
	merged := filepath.Join(filepath.Dir(o.Upper), "merged")
	var setup strings.Builder
	fmt.Fprintf(&setup, "set -e\nmount -t overlay overlay -o lowerdir=/,upperdir=%s,workdir=%s %s\n", o.Upper, o.work, merged)
	fmt.Fprintf(&setup, "mount -t proc proc %[1]s/proc\nmount --rbind /dev %[1]s/dev\nmount --rbind /sys %[1]s/sys\nmount -t tmpfs tmpfs %[1]s/run\n", merged)
	for _, b := range o.binds {
		fmt.Fprintf(&setup, "mkdir -p %[2]s%[1]s\nmount --bind %[1]s %[2]s%[1]s\n", quote(b), merged)
	}
	fmt.Fprintf(&setup, "exec chroot %s /bin/sh -c %s\n", merged, quote(script))
	args := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", setup.String()}
	if ns != nil {
		args = append([]string{"ip", "netns", "exec", ns.Name}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
