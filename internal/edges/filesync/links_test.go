package filesync

import (
	"bufio"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/tools/golden"
)

// unitTarget is what the enablement link points at, as systemctl enable makes it.
const unitTarget = "/" + ownership.ConnmarkUnitPath

// unitFiles are the unit and its enablement link, as the generator hands them on.
var unitFiles = []fileset.File{
	{Path: ownership.ConnmarkUnitPath, Mode: 0o644, Data: []byte(header + "[Unit]\n")},
	{Path: ownership.ConnmarkWantsLink, Link: unitTarget},
}

func symlink(t *testing.T, root, p, target string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, full); err != nil {
		t.Fatal(err)
	}
}

func computeOrFail(t *testing.T, root *rootfs.Root, want []fileset.File, ownedLink OwnedLink) []Change {
	t.Helper()
	changes, err := Compute(root, want, ownership.IsOwned, ownedLink, ownership.Globs)
	if err != nil {
		t.Fatal(err)
	}
	return changes
}

// applyLinked applies changes and requires the tree to hold n files and links, the enablement link among them.
func applyLinked(t *testing.T, r *rootfs.Root, root string, changes []Change, n int) {
	t.Helper()
	if err := Apply(r, changes); err != nil {
		t.Fatal(err)
	}
	tree := golden.ReadTreeOrFail(t, root)
	if got := string(tree[ownership.ConnmarkWantsLink]); got != golden.LinkPrefix+unitTarget || len(tree) != n {
		t.Errorf("link %q in %v", got, keys(tree))
	}
}

// umask is the process's, from /proc: a directory made with 0755 gets 0755 less it.
func umask(t *testing.T) os.FileMode {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			return os.FileMode(m)
		}
	}
	t.Fatal("no Umask in /proc/self/status")
	return 0
}

// TestLinkCreatedThenUnchanged: the enablement link is made, with the wants directory it needs, exactly as
// systemctl enable makes it; the diff shows its target; a second run changes nothing.
func TestLinkCreatedThenUnchanged(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755)
	r := openRoot(t, root)
	changes := computeOrFail(t, r, unitFiles, ownership.IsOwnedLink)
	if got := summary(changes); got != "create "+ownership.ConnmarkUnitPath+"; create "+ownership.ConnmarkWantsLink {
		t.Fatalf("changes: %s", got)
	}
	diff := Diff(r, changes)
	if !strings.Contains(diff, "+++ "+r.Join(ownership.ConnmarkWantsLink)+"\n@@ -0,0 +1 @@\n+-> "+unitTarget+"\n") {
		t.Errorf("the diff does not show the link:\n%s", diff)
	}
	applyLinked(t, r, root, changes, 2)
	wants := filepath.Join(root, path.Dir(ownership.ConnmarkWantsLink))
	if info, err := os.Lstat(wants); err != nil || !info.IsDir() || info.Mode().Perm() != 0o755&^umask(t) {
		t.Errorf("the wants directory: %v, %v", info, err)
	}
	if again := sync(t, root, unitFiles); len(again) != 0 {
		t.Errorf("second sync changed %s", summary(again))
	}
}

// TestLinkReplaced: symroute's link to another target, and symroute's own file where the link goes, are replaced
// by the link, and the diff shows what was there.
func TestLinkReplaced(t *testing.T) {
	// An ownership under which a link to any symroute unit is symroute's: the real one owns only the one target.
	ownedLink := func(p, target string) bool {
		return p == ownership.ConnmarkWantsLink && strings.HasPrefix(target, "/etc/systemd/system/symroute-")
	}
	for name, setup := range map[string]func(root string) string{
		"link to another target": func(root string) string {
			symlink(t, root, ownership.ConnmarkWantsLink, "/etc/systemd/system/symroute-old.service")
			return "--> /etc/systemd/system/symroute-old.service\n"
		},
		"symroute's file": func(root string) string {
			write(t, root, ownership.ConnmarkWantsLink, header)
			return "-" + header
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			old := setup(root)
			r := openRoot(t, root)
			changes := computeOrFail(t, r, unitFiles[1:], ownedLink)
			if got := summary(changes); got != "update "+ownership.ConnmarkWantsLink {
				t.Fatalf("changes: %s", got)
			}
			if diff := Diff(r, changes); !strings.Contains(diff, old+"+-> "+unitTarget+"\n") {
				t.Errorf("diff:\n%s", diff)
			}
			applyLinked(t, r, root, changes, 1)
		})
	}
}

// TestLinkRefusedOverOthersFiles: another program's file, link or directory where the link goes makes Compute
// refuse with no change at all; so does another program's link where a file goes.
func TestLinkRefusedOverOthersFiles(t *testing.T) {
	for name, c := range map[string]struct {
		setup func(root string)
		at    string
		err   string
	}{
		"foreign file": {func(root string) { write(t, root, ownership.ConnmarkWantsLink, "[Unit]\n") },
			ownership.ConnmarkWantsLink, "exists and was not generated by symroute"},
		"foreign link": {func(root string) {
			symlink(t, root, ownership.ConnmarkWantsLink, "/usr/lib/systemd/system/other.service")
		},
			ownership.ConnmarkWantsLink, `is a symbolic link symroute did not make (to "/usr/lib/systemd/system/other.service")`},
		"directory": {func(root string) { os.MkdirAll(filepath.Join(root, ownership.ConnmarkWantsLink), 0o755) },
			ownership.ConnmarkWantsLink, "is not a regular file"},
		"link where the unit goes": {func(root string) {
			symlink(t, root, ownership.ConnmarkUnitPath, "/usr/lib/systemd/system/other.service")
		},
			ownership.ConnmarkUnitPath, "is a symbolic link symroute did not make"},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			c.setup(root)
			before := golden.ReadTreeOrFail(t, root)
			changes, err := Compute(openRoot(t, root), unitFiles, ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs)
			if changes != nil {
				t.Errorf("Compute refused and still listed %s", summary(changes))
			}
			if wantErr := filepath.Join(root, c.at) + " " + c.err; err == nil || !strings.HasPrefix(err.Error(), wantErr) {
				t.Errorf("Compute: %v, want %q", err, wantErr)
			}
			if after := golden.ReadTreeOrFail(t, root); len(after) != len(before) {
				t.Errorf("the tree changed: %v", keys(after))
			}
		})
	}
}

// TestStaleLinks: symroute's link, no longer wanted, is removed with what it pointed at recorded; another
// program's links where symroute's could be stay, and nothing behind any link is touched.
func TestStaleLinks(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, "90-symroute.conf", header)
	root := t.TempDir()
	symlink(t, root, ownership.ConnmarkWantsLink, unitTarget)
	foreign := map[string]string{
		"etc/sysctl.d/90-symroute.conf":                                        filepath.Join(outside, "90-symroute.conf"),
		"etc/systemd/network/10-symroute-x.network":                            "/usr/lib/systemd/network/x.network",
		"etc/systemd/system/symroute-connmark.service":                         "/dev/null", // masked by hand
		"etc/systemd/system/multi-user.target.wants/symroute-connmark.service": unitTarget,
	}
	for p, target := range foreign {
		symlink(t, root, p, target)
	}
	r := openRoot(t, root)
	changes := computeOrFail(t, r, nil, ownership.IsOwnedLink)
	if len(changes) != 1 || changes[0].Kind != Remove || changes[0].Path != ownership.ConnmarkWantsLink || changes[0].OldLink != unitTarget {
		t.Fatalf("changes: %+v", changes)
	}
	if diff := Diff(r, changes); !strings.Contains(diff, "+++ /dev/null\n@@ -1 +0,0 @@\n--> "+unitTarget+"\n") {
		t.Errorf("diff:\n%s", diff)
	}
	if err := Apply(r, changes); err != nil {
		t.Fatal(err)
	}
	tree := golden.ReadTreeOrFail(t, root)
	if _, ok := tree[ownership.ConnmarkWantsLink]; ok {
		t.Error("the stale link stayed")
	}
	for p, target := range foreign {
		if got := string(tree[p]); got != golden.LinkPrefix+target {
			t.Errorf("%s, another program's link, is now %q", p, got)
		}
	}
	if got := golden.ReadTreeOrFail(t, outside); string(got["90-symroute.conf"]) != header {
		t.Errorf("the file behind a link changed: %v", got)
	}
}

// TestLinkedWantsDirectoryIsRefused: a wants directory that is a link out of the root is never written or
// searched through: Compute refuses the link symroute wants there, finds no stale link behind it, and Apply called
// regardless makes nothing outside.
func TestLinkedWantsDirectoryIsRefused(t *testing.T) {
	outside := t.TempDir()
	symlink(t, outside, "symroute-connmark.service", unitTarget) // looks like symroute's stale link
	root := t.TempDir()
	symlink(t, root, path.Dir(ownership.ConnmarkWantsLink), outside)
	r := openRoot(t, root)
	if _, err := Compute(r, unitFiles[1:], ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Compute through a linked wants directory: %v", err)
	}
	if changes := computeOrFail(t, r, nil, ownership.IsOwnedLink); len(changes) != 0 {
		t.Errorf("stale links found through a linked directory: %s", summary(changes))
	}
	err := Apply(r, []Change{{Kind: Update, Path: ownership.ConnmarkWantsLink, Link: "/elsewhere"}, {Kind: Remove, Path: ownership.ConnmarkWantsLink}})
	if err == nil {
		t.Error("Apply wrote through a linked directory")
	}
	if tree := golden.ReadTreeOrFail(t, outside); len(tree) != 1 || string(tree["symroute-connmark.service"]) != golden.LinkPrefix+unitTarget {
		t.Errorf("the directory behind the link changed: %v", tree)
	}
}

// TestApplyStagesLinksBeforeAnyRename: a link is made under its temporary name with the files' temporaries, before
// anything is renamed into place.
func TestApplyStagesLinksBeforeAnyRename(t *testing.T) {
	root := t.TempDir()
	wants := filepath.Join(root, path.Dir(ownership.ConnmarkWantsLink))
	staged := false
	old := trace
	trace = func(event, dir, name string) {
		if event == "rename" && !staged {
			entries, _ := os.ReadDir(wants)
			staged = len(entries) == 1 && strings.Contains(entries[0].Name(), rootfs.TempSuffix) && entries[0].Type()&os.ModeSymlink != 0
		}
	}
	t.Cleanup(func() { trace = old })
	// The link first, so a rename of it as it was staged would come before the unit's temporary.
	changes := []Change{
		{Kind: Create, Path: ownership.ConnmarkWantsLink, Link: unitTarget},
		{Kind: Create, Path: ownership.ConnmarkUnitPath, New: unitFiles[0].Data, Mode: 0o644},
	}
	applyLinked(t, openRoot(t, root), root, changes, 2)
	if !staged {
		t.Error("the link's temporary was not in place at the first rename")
	}
}

// TestRemoveTempsRemovesLinkTemporaries: a temporary link an interrupted run left beside the enablement link is
// removed like a temporary file.
func TestRemoveTempsRemovesLinkTemporaries(t *testing.T) {
	root := t.TempDir()
	left := path.Join(path.Dir(ownership.ConnmarkWantsLink), "."+ownership.ConnmarkUnit+rootfs.TempSuffix+"0a1b2c")
	symlink(t, root, left, unitTarget)
	removed, err := RemoveTemps(openRoot(t, root), ownership.IsOwnedName, ownership.Globs)
	if err != nil || strings.Join(removed, " ") != left {
		t.Errorf("removed %v, %v; want %s", removed, err, left)
	}
}
