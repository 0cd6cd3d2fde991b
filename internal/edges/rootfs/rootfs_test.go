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
