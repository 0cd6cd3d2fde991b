package filesync

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/tools/golden"
)

const header = ownership.HeaderPrefix + " from test.\n"

func write(t *testing.T, root, p, data string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func openRoot(t *testing.T, dir string) *rootfs.Root {
	t.Helper()
	r, err := rootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func sync(t *testing.T, dir string, want []fileset.File) []Change {
	t.Helper()
	root := openRoot(t, dir)
	changes, err := Compute(root, want, ownership.IsOwned, ownership.Globs)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(root, changes); err != nil {
		t.Fatal(err)
	}
	return changes
}

func summary(changes []Change) string {
	var s []string
	for _, c := range changes {
		s = append(s, string(c.Kind)+" "+c.Path)
	}
	return strings.Join(s, "; ")
}

func TestSyncWritesRemovesAndLeavesOthersAlone(t *testing.T) {
	root := t.TempDir()
	// Stale: symroute's name and header. Kept: a hand-written file with symroute's name but no header, a
	// foreign file with the header text but another name, and netplan's file.
	write(t, root, "etc/systemd/network/10-symroute-old.network", header+"[Match]\nName=old\n")
	write(t, root, "etc/systemd/network/10-netplan-x.network.d/90-symroute.conf", header)
	write(t, root, "etc/systemd/network/10-symroute-mine.network", "# my own file\n")
	write(t, root, "etc/systemd/network/50-other.network", header)
	write(t, root, "run/systemd/network/10-netplan-x.network", "[Match]\nName=x\n")
	want := []fileset.File{
		{Path: "etc/systemd/network/10-symroute-eth0.network", Mode: 0o644, Data: []byte(header + "new\n")},
		{Path: "etc/sysctl.d/90-symroute.conf", Mode: 0o644, Data: []byte(header + "s\n")},
	}
	got := summary(sync(t, root, want))
	wantChanges := "remove etc/systemd/network/10-netplan-x.network.d/90-symroute.conf; create etc/sysctl.d/90-symroute.conf; " +
		"remove etc/systemd/network/10-symroute-old.network; create etc/systemd/network/10-symroute-eth0.network"
	for _, c := range strings.Split(wantChanges, "; ") {
		if !strings.Contains(got, c) {
			t.Errorf("changes %q lack %q", got, c)
		}
	}
	tree, err := golden.ReadTree(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, kept := range []string{"etc/systemd/network/10-symroute-mine.network", "etc/systemd/network/50-other.network", "run/systemd/network/10-netplan-x.network"} {
		if _, ok := tree[kept]; !ok {
			t.Errorf("%s, not symroute's, was removed", kept)
		}
	}
	for p := range tree {
		if strings.Contains(filepath.Base(p), ".tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
	}
	if again := sync(t, root, want); len(again) != 0 {
		t.Errorf("second sync changed %s", summary(again))
	}
	want[0].Data = []byte(header + "changed\n")
	if got := summary(sync(t, root, want)); got != "update etc/systemd/network/10-symroute-eth0.network" {
		t.Errorf("after one file changed: %s", got)
	}
}

func TestSyncRefusesSymlinksAndForeignFilesBeforeWriting(t *testing.T) {
	for name, setup := range map[string]func(root string){
		"symlink": func(root string) {
			write(t, root, "elsewhere", "x")
			os.MkdirAll(filepath.Join(root, "etc/sysctl.d"), 0o755)
			if err := os.Symlink(filepath.Join(root, "elsewhere"), filepath.Join(root, "etc/sysctl.d/90-symroute.conf")); err != nil {
				t.Fatal(err)
			}
		},
		"foreign file": func(root string) { write(t, root, "etc/sysctl.d/90-symroute.conf", "net.ipv4.ip_forward = 1\n") },
		"directory":    func(root string) { os.MkdirAll(filepath.Join(root, "etc/sysctl.d/90-symroute.conf"), 0o755) },
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			setup(root)
			before, _ := golden.ReadTree(root)
			want := []fileset.File{
				// Sorted first, so a writer that did not check everything up front would have written it.
				{Path: "etc/aaa/10-symroute-first.conf", Mode: 0o644, Data: []byte(header)},
				{Path: "etc/sysctl.d/90-symroute.conf", Mode: 0o644, Data: []byte(header)},
			}
			if _, err := Compute(openRoot(t, root), want, ownership.IsOwned, ownership.Globs); err == nil {
				t.Fatal("Compute accepted the target")
			}
			after, _ := golden.ReadTree(root)
			if len(after) != len(before) {
				t.Errorf("files changed despite the refusal: %v -> %v", before, after)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/sysctl.d/90-symroute.conf", header+"a = 1\n")
	r := openRoot(t, root)
	changes, err := Compute(r, []fileset.File{{Path: "etc/sysctl.d/90-symroute.conf", Mode: 0o644, Data: []byte(header + "a = 2\n")}}, ownership.IsOwned, ownership.Globs)
	if err != nil {
		t.Fatal(err)
	}
	d := Diff(r, changes)
	if !strings.Contains(d, "-a = 1\n+a = 2\n") || !strings.Contains(d, filepath.Join(root, "etc/sysctl.d/90-symroute.conf")) {
		t.Errorf("diff:\n%s", d)
	}
}

// TestApplyStagingFailureReplacesNothing: when one file cannot be staged, no other file is replaced either.
func TestApplyStagingFailureReplacesNothing(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/a/10-symroute-x.conf", header+"old\n")
	write(t, root, "etc/b", "a file where a directory should be\n")
	err := Apply(openRoot(t, root), []Change{
		{Kind: Update, Path: "etc/a/10-symroute-x.conf", New: []byte(header + "new\n"), Mode: 0o644},
		{Kind: Create, Path: "etc/b/10-symroute-y.conf", New: []byte(header), Mode: 0o644},
	})
	if err == nil {
		t.Fatal("Apply succeeded with an unwritable target")
	}
	tree, _ := golden.ReadTree(root)
	if got := string(tree["etc/a/10-symroute-x.conf"]); got != header+"old\n" {
		t.Errorf("x was replaced although y failed: %q", got)
	}
	if len(tree) != 2 {
		t.Errorf("temporary files left: %v", tree)
	}
}

// TestLinksUnderTheRootAreNeverFollowed: with a directory symroute writes in replaced by a link to a place outside
// the root, Compute refuses, and neither a write nor a stale-file removal reaches the link's target.
func TestLinksUnderTheRootAreNeverFollowed(t *testing.T) {
	outside := t.TempDir()
	stale := header + "[Match]\nName=old\n"
	write(t, outside, "10-symroute-old.network", stale) // looks like symroute's stale file
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/systemd"), 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "etc/systemd/network")); err != nil {
		t.Fatal(err)
	}
	r := openRoot(t, root)
	want := []fileset.File{{Path: "etc/systemd/network/10-symroute-eth0.network", Mode: 0o644, Data: []byte(header)}}
	_, err := Compute(r, want, ownership.IsOwned, ownership.Globs)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Compute through a linked directory: %v", err)
	}
	// Apply called anyway (a caller that ignored the refusal) still cannot write or remove through the link.
	err = Apply(r, []Change{
		{Kind: Create, Path: "etc/systemd/network/10-symroute-eth0.network", New: []byte(header), Mode: 0o644},
		{Kind: Remove, Path: "etc/systemd/network/10-symroute-old.network"},
	})
	if err == nil {
		t.Error("Apply wrote through a linked directory")
	}
	tree, _ := golden.ReadTree(outside)
	if len(tree) != 1 || string(tree["10-symroute-old.network"]) != stale {
		t.Errorf("the link's target changed: %v", tree)
	}
}

// TestStaleRemovalSkipsLinkedDirectories: a drop-in directory that is a link is not searched for stale files.
func TestStaleRemovalSkipsLinkedDirectories(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, "90-symroute.conf", header)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/systemd/network"), 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "etc/systemd/network/10-x.network.d")); err != nil {
		t.Fatal(err)
	}
	changes := sync(t, root, nil)
	if len(changes) != 0 {
		t.Errorf("changes through a linked directory: %s", summary(changes))
	}
	if _, err := os.Stat(filepath.Join(outside, "90-symroute.conf")); err != nil {
		t.Errorf("the file behind the link is gone: %v", err)
	}
}

// TestFIFOAtTargetIsRefusedWithoutBlocking: a FIFO where symroute would write is refused at once; reading it would
// block forever.
func TestFIFOAtTargetIsRefusedWithoutBlocking(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/sysctl.d"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(root, "etc/sysctl.d/90-symroute.conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Compute(openRoot(t, root), []fileset.File{{Path: "etc/sysctl.d/90-symroute.conf", Mode: 0o644, Data: []byte(header)}}, ownership.IsOwned, ownership.Globs)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Compute with a FIFO at the target: %v", err)
	}
}

// TestRemoveTemps: the temporaries of symroute's own files are removed; anyone else's hidden files are not.
func TestRemoveTemps(t *testing.T) {
	root := t.TempDir()
	left := []string{
		"etc/systemd/network/.10-symroute-eth0.network" + rootfs.TempSuffix + "0a1b2c",
		"etc/systemd/network/10-netplan-x.network.d/.90-symroute.conf" + rootfs.TempSuffix + "0a1b2c",
		"etc/sysctl.d/.90-symroute.conf" + rootfs.TempSuffix + "ffff00",
	}
	kept := []string{
		"etc/systemd/network/.hidden.network",
		"etc/systemd/network/.50-other.network" + rootfs.TempSuffix + "0a1b2c",
		"etc/elsewhere/.90-symroute.conf" + rootfs.TempSuffix + "0a1b2c",
	}
	for _, p := range append(append([]string{}, left...), kept...) {
		write(t, root, p, "partial")
	}
	removed, err := RemoveTemps(openRoot(t, root), ownership.IsOwnedName, ownership.Globs)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(left)
	if strings.Join(removed, " ") != strings.Join(left, " ") {
		t.Errorf("removed %v, want %v", removed, left)
	}
	tree, _ := golden.ReadTree(root)
	for _, p := range kept {
		if _, ok := tree[p]; !ok {
			t.Errorf("%s, not symroute's, was removed", p)
		}
	}
}
