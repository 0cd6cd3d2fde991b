package rootfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	_ "github.com/symroute/symroute/internal/tools/golden"
)

func mkfile(t *testing.T, root, rel, data string) {
	t.Helper()
	full := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func openRoot(t *testing.T, dir string) *Root {
	t.Helper()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// bothModes runs a test with openat2 and with the fallback for kernels without it.
func bothModes(t *testing.T, test func(t *testing.T, fallback bool)) {
	for _, fallback := range []bool{false, true} {
		name := "openat2"
		if fallback {
			name = "fallback"
		}
		t.Run(name, func(t *testing.T) {
			forceFallback = fallback
			t.Cleanup(func() { forceFallback = false })
			test(t, fallback)
		})
	}
}

// TestReadStaysInsideTheRoot: links are followed as the system would follow them, but never out of the root: a
// relative link inside works in both modes; an absolute one resolves against the root with openat2 and is refused
// by the fallback; escaping links never read the file outside.
func TestReadStaysInsideTheRoot(t *testing.T) {
	bothModes(t, func(t *testing.T, fallback bool) {
		outside := t.TempDir()
		mkfile(t, outside, "secret.network", "outside")
		dir := t.TempDir()
		mkfile(t, dir, "usr/lib/systemd/network/a.network", "inside")
		links := map[string]string{
			"etc/systemd/network/rel.network":    "../../../usr/lib/systemd/network/a.network",
			"etc/systemd/network/abs.network":    "/usr/lib/systemd/network/a.network",
			"etc/systemd/network/escape.network": "../../../../../../../../" + filepath.Join(outside, "secret.network"),
			"etc/systemd/network/out.network":    filepath.Join(outside, "secret.network"),
		}
		os.MkdirAll(filepath.Join(dir, "etc/systemd/network"), 0o755)
		for link, target := range links {
			if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
				t.Fatal(err)
			}
		}
		fsys := openRoot(t, dir).ReadFS()
		for link := range links {
			data, err := fs.ReadFile(fsys, link)
			if string(data) == "outside" {
				t.Errorf("%s read the file outside the root", link)
			}
			wantInside := strings.HasSuffix(link, "rel.network") || strings.HasSuffix(link, "abs.network") && !fallback
			if wantInside && (err != nil || string(data) != "inside") {
				t.Errorf("%s: %q, %v; want the file inside the root", link, data, err)
			}
		}
		if target, err := fs.ReadLink(fsys, "etc/systemd/network/abs.network"); err != nil || target != "/usr/lib/systemd/network/a.network" {
			t.Errorf("ReadLink: %q, %v", target, err)
		}
		entries, err := fs.ReadDir(fsys, "etc/systemd/network")
		if err != nil || len(entries) != len(links) {
			t.Errorf("ReadDir: %d entries, %v", len(entries), err)
		}
	})
}

// TestReadRefusesWhatIsNotARegularFile: a FIFO, a device and an oversized file are refused at once.
func TestReadRefusesWhatIsNotARegularFile(t *testing.T) {
	bothModes(t, func(t *testing.T, fallback bool) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "d"), 0o755)
		if err := syscall.Mkfifo(filepath.Join(dir, "d/fifo.network"), 0o644); err != nil {
			t.Fatal(err)
		}
		mkfile(t, dir, "d/big.network", strings.Repeat("x", MaxFileSize+1))
		os.Symlink("/dev/zero", filepath.Join(dir, "d/zero.network"))
		fsys := openRoot(t, dir).ReadFS()
		for name, want := range map[string]error{"d/fifo.network": ErrNotRegular, "d/big.network": ErrTooLarge} {
			if _, err := fs.ReadFile(fsys, name); !errors.Is(err, want) {
				t.Errorf("%s: %v, want %v", name, err, want)
			}
		}
		if _, err := fs.ReadFile(fsys, "d/zero.network"); err == nil {
			t.Error("read /dev/zero through a link")
		}
		if _, err := ReadFile(filepath.Join(dir, "d/fifo.network"), 100); !errors.Is(err, ErrNotRegular) {
			t.Errorf("ReadFile of a FIFO: %v", err)
		}
	})
}

// TestWritesRefuseLinks: a link anywhere between the root and a directory symroute writes in is refused, for an
// existing directory and for one that would be created beneath the link.
func TestWritesRefuseLinks(t *testing.T) {
	bothModes(t, func(t *testing.T, fallback bool) {
		outside := t.TempDir()
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
		if err := os.Symlink(outside, filepath.Join(dir, "etc/systemd")); err != nil {
			t.Fatal(err)
		}
		r := openRoot(t, dir)
		for _, create := range []bool{false, true} {
			if d, err := r.OpenDir("etc/systemd/network", create); !errors.Is(err, ErrLink) {
				if d != nil {
					d.Close()
				}
				t.Errorf("OpenDir through a link (create=%v): %v, want ErrLink", create, err)
			}
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Errorf("created %v outside the root", entries)
		}
		d, err := r.OpenDir("etc/new/deep", true)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := os.Symlink(filepath.Join(outside, "x"), filepath.Join(dir, "etc/new/deep/link")); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ReadFile("link", 100); !errors.Is(err, ErrLink) {
			t.Errorf("ReadFile of a link in a write directory: %v", err)
		}
		name, err := d.WriteTemp("link", []byte("new"), 0o640)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Rename(name, "link"); err != nil {
			t.Fatal(err)
		}
		info, err := os.Lstat(filepath.Join(dir, "etc/new/deep/link"))
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm() != 0o640 {
			t.Errorf("rename over a link: %v %v", info, err)
		}
		if _, err := os.Lstat(filepath.Join(outside, "x")); err == nil {
			t.Error("the rename wrote through the link")
		}
	})
}

// TestLinksAreMadeBesideTheirTargetAndRenamedIntoPlace: a link is made under CreateTemp's temporary name and
// renamed over whatever is at the target, a file or another link, without following either; ReadLink reads it
// back through the directory; a directory at the target stays, and so does the link's own target outside the
// root.
func TestLinksAreMadeBesideTheirTargetAndRenamedIntoPlace(t *testing.T) {
	bothModes(t, func(t *testing.T, fallback bool) {
		outside := t.TempDir()
		mkfile(t, outside, "unit", "outside")
		dir := t.TempDir()
		mkfile(t, dir, "etc/wants/file.service", "a file")
		if err := os.Symlink(filepath.Join(outside, "unit"), filepath.Join(dir, "etc/wants/link.service")); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, "etc/wants/dir.service"), 0o755)
		d, err := openRoot(t, dir).OpenDir("etc/wants", false)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for _, name := range []string{"new.service", "file.service", "link.service"} {
			tmp, err := d.CreateTempLink(name, "/etc/systemd/system/x.service")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tmp.Name, "."+name+TempSuffix) {
				t.Errorf("temporary %q is not named as CreateTemp names them", tmp.Name)
			}
			if err := tmp.Sync(); err != nil {
				t.Error(err)
			}
			if err := d.Rename(tmp.Name, name); err != nil {
				t.Fatal(err)
			}
			if got, err := d.ReadLink(name); err != nil || got != "/etc/systemd/system/x.service" {
				t.Errorf("%s: ReadLink %q, %v", name, got, err)
			}
			if got, err := os.Readlink(filepath.Join(dir, "etc/wants", name)); err != nil || got != "/etc/systemd/system/x.service" {
				t.Errorf("%s on disk: %q, %v", name, got, err)
			}
		}
		if data, err := os.ReadFile(filepath.Join(outside, "unit")); err != nil || string(data) != "outside" {
			t.Errorf("the replaced link's target changed: %q, %v", data, err)
		}
		tmp, err := d.CreateTempLink("dir.service", "/etc/systemd/system/x.service")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Rename(tmp.Name, "dir.service"); !errors.Is(err, syscall.EISDIR) {
			t.Errorf("a link renamed over a directory: %v, want EISDIR", err)
		}
		tmp.Discard()
		if info, err := os.Lstat(filepath.Join(dir, "etc/wants/dir.service")); err != nil || !info.IsDir() {
			t.Errorf("the directory at the target: %v, %v", info, err)
		}
		if _, err := d.ReadLink("dir.service"); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("ReadLink of a directory: %v, want EINVAL", err)
		}
		entries, _ := os.ReadDir(filepath.Join(dir, "etc/wants"))
		if len(entries) != 4 {
			t.Errorf("want the four targets and no temporary, got %v", entries)
		}
	})
}

// TestRemoveTempsRemovesLeftLinks: a temporary link a killed run left is removed, itself, not its target; another
// program's hidden link stays.
func TestRemoveTempsRemovesLeftLinks(t *testing.T) {
	outside := t.TempDir()
	mkfile(t, outside, "unit", "outside")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "wants"), 0o755)
	left := ".mine.service" + TempSuffix + "0a1b2c"
	for _, name := range []string{left, ".other.service" + TempSuffix + "0a1b2c"} {
		if err := os.Symlink(filepath.Join(outside, "unit"), filepath.Join(dir, "wants", name)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := openRoot(t, dir).OpenDir("wants", false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	removed, err := d.RemoveTemps(func(target string) bool { return target == "mine.service" })
	if err != nil || len(removed) != 1 || removed[0] != left {
		t.Errorf("removed %v, %v; want %s", removed, err, left)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "wants")); len(entries) != 1 {
		t.Errorf("left %v, want the other program's link", entries)
	}
	if _, err := os.Stat(filepath.Join(outside, "unit")); err != nil {
		t.Errorf("the link's target is gone: %v", err)
	}
}
