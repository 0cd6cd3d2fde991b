// Package golden compares test output with files checked into the repository and rewrites them when tests run
// with -update (or UPDATE_GOLDEN=1). Every package with tests imports it, so `go test ./... -update` never meets
// a package that does not know the flag.
package golden

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	udiff "github.com/aymanbagabas/go-udiff"
)

var update = flag.Bool("update", false, "rewrite golden files with the output of this run")

// Updating reports whether golden files are being rewritten.
func Updating() bool { return *update || os.Getenv("UPDATE_GOLDEN") == "1" }

// File compares got with the golden file at path.
func File(t testing.TB, path string, got []byte) {
	t.Helper()
	if Updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (run go test with -update to accept):\n%s", path, udiff.Unified(path, "got", string(want), string(got)))
	}
}

// Tree compares the files in got (path relative to dir -> content) with the tree under dir: a missing file, an
// extra file and any differing byte fail.
func Tree(t testing.TB, dir string, got map[string][]byte) {
	t.Helper()
	if Updating() {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		for p, data := range got {
			if target, ok := bytes.CutPrefix(data, []byte(LinkPrefix)); ok {
				dst := filepath.Join(dir, p)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(string(target), dst); err != nil {
					t.Fatal(err)
				}
				continue
			}
			File(t, filepath.Join(dir, p), data)
		}
		return
	}
	want, err := ReadTree(dir)
	if err != nil {
		t.Fatalf("%v (run go test with -update to create it)", err)
	}
	for _, p := range sortedKeys(want) {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: expected file was not generated", filepath.Join(dir, p))
			continue
		}
		if !bytes.Equal(want[p], g) {
			t.Errorf("%s differs (run go test with -update to accept):\n%s", filepath.Join(dir, p), udiff.Unified("want", "got", string(want[p]), string(g)))
		}
	}
	for _, p := range sortedKeys(got) {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: generated but not expected", filepath.Join(dir, p))
		}
	}
}

// LinkPrefix stands for a symbolic link in a tree: the link's content is LinkPrefix followed by its target, so a
// link and a file never compare equal.
const LinkPrefix = "symbolic link to "

// ReadTree returns every regular file and symbolic link under dir, by slash-separated path relative to dir. A
// missing dir is an empty tree.
func ReadTree(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		link := d.Type()&fs.ModeSymlink != 0
		if !d.Type().IsRegular() && !link {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if link {
			target, err := os.Readlink(p)
			out[filepath.ToSlash(rel)] = []byte(LinkPrefix + target)
			return err
		}
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = data
		return err
	})
	if os.IsNotExist(err) {
		return out, nil
	}
	return out, err
}

// ReadTreeOrFail is ReadTree for a test: a tree that cannot be read fails it, since it would compare equal to an
// empty one.
func ReadTreeOrFail(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	tree, err := ReadTree(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return tree
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
