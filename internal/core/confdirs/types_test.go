package confdirs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOnlyWhatSystemdReadsAsAFile: a regular file and a link to one count; a directory, a FIFO, a dangling link
// and a link to a directory do not, whatever their names.
func TestOnlyWhatSystemdReadsAsAFile(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "etc/d")
	if err := os.MkdirAll(filepath.Join(d, "20-dir.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"10-file.conf": "a", "target": "b"} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(d, "30-fifo.conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"40-link.conf":     "target",
		"50-dangling.conf": "missing",
		"60-linkdir.conf":  "20-dir.conf",
	} {
		if err := os.Symlink(target, filepath.Join(d, name)); err != nil {
			t.Fatal(err)
		}
	}
	files, err := List(os.DirFS(root), []string{"etc/d"}, ".conf")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Name)
	}
	if want := "10-file.conf 40-link.conf"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}
