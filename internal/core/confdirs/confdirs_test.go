package confdirs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/symroute/symroute/internal/tools/golden"
)

// TestPrecedence: earlier directories mask names in later ones, /dev/null masks a name everywhere, other suffixes
// and hidden files are ignored, and the result is sorted by name across directories.
func TestPrecedence(t *testing.T) {
	root := t.TempDir()
	for p, data := range map[string]string{
		"etc/d/50-b.conf":     "etc",
		"usr/lib/d/50-b.conf": "usr",
		"usr/lib/d/10-a.conf": "usr",
		"run/d/90-c.conf":     "run",
		"usr/lib/d/70-m.conf": "masked",
		"etc/d/README":        "not a .conf",
		"etc/d/.05-h.conf":    "hidden: systemd skips it",
	} {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/dev/null", filepath.Join(root, "etc/d/70-m.conf")); err != nil {
		t.Fatal(err)
	}
	files, err := List(os.DirFS(root), []string{"etc/d", "run/d", "usr/lib/d", "missing/d"}, ".conf")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Path)
	}
	if want := "usr/lib/d/10-a.conf etc/d/50-b.conf run/d/90-c.conf"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}
