package filesync

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"

	"github.com/symroute/symroute/internal/tools/golden"
)

// recordTrace collects Apply's sync and rename events for the test's duration.
func recordTrace(t *testing.T) func() []string {
	var mu gosync.Mutex
	var events []string
	old := trace
	trace = func(event, dir, name string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, event+" "+path.Join(dir, name))
	}
	t.Cleanup(func() { trace = old })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), events...)
	}
}

// smallBatches makes Apply sync its temporaries n at a time for the test's duration.
func smallBatches(t *testing.T, n int) {
	old := maxOpenTemps
	maxOpenTemps = n
	t.Cleanup(func() { maxOpenTemps = old })
}

// TestApplySyncsEveryFileBeforeAnyRename: the temporaries are synced in batches and concurrently, but no file is
// renamed into place before every temporary of the run is on disk, whatever the batch it was in.
func TestApplySyncsEveryFileBeforeAnyRename(t *testing.T) {
	smallBatches(t, 3)
	events := recordTrace(t)
	root := t.TempDir()
	write(t, root, "etc/a/10-symroute-0.conf", header+"old\n")
	var changes []Change
	for i := range 10 {
		dir := []string{"etc/a", "etc/b"}[i%2]
		kind := Create
		if i == 0 {
			kind = Update
		}
		changes = append(changes, Change{Kind: kind, Path: fmt.Sprintf("%s/10-symroute-%d.conf", dir, i), New: []byte(fmt.Sprintf("%s%d\n", header, i)), Mode: 0o640})
	}
	if err := Apply(openRoot(t, root), changes); err != nil {
		t.Fatal(err)
	}
	synced, renamed, early := 0, 0, false
	for _, e := range events() {
		switch {
		case strings.HasPrefix(e, "synced "):
			early = early || renamed > 0
			synced++
		case strings.HasPrefix(e, "rename "):
			renamed++
		}
	}
	if early {
		t.Errorf("a temporary was synced after a rename: %v", events())
	}
	if synced != len(changes) || renamed != len(changes) {
		t.Errorf("%d synced and %d renamed, want %d each: %v", synced, renamed, len(changes), events())
	}
	tree, err := golden.ReadTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree) != len(changes) {
		t.Errorf("want exactly the %d files, got %d: temporaries left?", len(changes), len(tree))
	}
	for _, c := range changes {
		if got := string(tree[c.Path]); got != string(c.New) {
			t.Errorf("%s = %q, want %q", c.Path, got, c.New)
		}
		if info, err := os.Stat(filepath.Join(root, c.Path)); err != nil || info.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, %v", c.Path, info.Mode(), err)
		}
	}
}

// TestApplyFailureAfterABatchLeavesNothing: a file that cannot be staged after earlier batches were synced
// replaces nothing and leaves no temporary behind, synced or not.
func TestApplyFailureAfterABatchLeavesNothing(t *testing.T) {
	smallBatches(t, 2)
	root := t.TempDir()
	write(t, root, "etc/a/10-symroute-x.conf", header+"old\n")
	write(t, root, "etc/b", "a file where a directory should be\n")
	changes := []Change{{Kind: Update, Path: "etc/a/10-symroute-x.conf", New: []byte(header + "new\n"), Mode: 0o644}}
	for i := range 4 {
		changes = append(changes, Change{Kind: Create, Path: fmt.Sprintf("etc/a/10-symroute-%d.conf", i), New: []byte(header), Mode: 0o644})
	}
	changes = append(changes, Change{Kind: Create, Path: "etc/b/10-symroute-y.conf", New: []byte(header), Mode: 0o644})
	if err := Apply(openRoot(t, root), changes); err == nil {
		t.Fatal("Apply succeeded with an unwritable target")
	}
	tree, err := golden.ReadTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tree["etc/a/10-symroute-x.conf"]); got != header+"old\n" {
		t.Errorf("x was replaced although y failed: %q", got)
	}
	if len(tree) != 2 {
		t.Errorf("files left besides x and etc/b: %v", keys(tree))
	}
}

func keys(tree map[string][]byte) []string {
	var out []string
	for k := range tree {
		out = append(out, k)
	}
	return out
}
