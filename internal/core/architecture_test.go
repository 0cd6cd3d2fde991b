// Package core_test checks the architecture the folder list shows: the core (this folder, generator and
// templates) reads and decides, and imports no edge, no orchestration and no I/O package.
package core_test

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/symroute/symroute/"

// forbidden are the imports that would let the core touch the machine.
var forbidden = []string{
	"os", "os/exec", "os/signal", "syscall", "net/http", "golang.org/x/sys/unix",
	"github.com/vishvananda/netlink", "github.com/vishvananda/netns", "github.com/godbus/dbus/v5",
	"github.com/coreos/go-systemd/v22/dbus",
	module + "internal/edges/", module + "internal/orchestration/", module + "internal/tools/",
}

func TestCoreImportsNoIO(t *testing.T) {
	var dirs []string
	filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != "." && d.Name() != "testdata" {
			dirs = append(dirs, p)
		}
		return err
	})
	dirs = append(dirs, "../../generator", "../../templates")
	if len(dirs) < 10 {
		t.Fatalf("found only %v", dirs)
	}
	for _, dir := range dirs {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, imp := range pkg.Imports {
			for _, f := range forbidden {
				if imp == f || strings.HasSuffix(f, "/") && strings.HasPrefix(imp, f) {
					t.Errorf("%s imports %s", dir, imp)
				}
			}
		}
	}
}
