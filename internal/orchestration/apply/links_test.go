package apply

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/filesync"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/tools/golden"
)

// snapshot is every file under dir with its mode and bytes, and every link with its target.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p, data := range golden.ReadTreeOrFail(t, dir) {
		info, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		out[p] = fmt.Sprintf("%v %q", info.Mode(), data)
	}
	return out
}

// TestUndoRestoresLinksExactly: whether a run undoes its own changes or a later run undoes them from the record,
// a link the run made is removed, and a link or file it replaced or removed comes back as it was.
func TestUndoRestoresLinksExactly(t *testing.T) {
	const header = ownership.HeaderPrefix + " from test.\n"
	target := "/" + ownership.ConnmarkUnitPath
	unit := fileset.File{Path: ownership.ConnmarkUnitPath, Mode: 0o644, Data: []byte(header + "[Unit]\n")}
	link := fileset.File{Path: ownership.ConnmarkWantsLink, Link: target}
	writeFile := func(root, p, data string, mode os.FileMode) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	makeLink := func(root string) {
		os.MkdirAll(filepath.Join(root, filepath.Dir(ownership.ConnmarkWantsLink)), 0o755)
		if err := os.Symlink(target, filepath.Join(root, ownership.ConnmarkWantsLink)); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]struct {
		before func(root string)
		want   []fileset.File
	}{
		"link created":          {func(string) {}, []fileset.File{unit, link}},
		"link removed":          {func(root string) { writeFile(root, unit.Path, string(unit.Data), 0o644); makeLink(root) }, nil},
		"file replaced by link": {func(root string) { writeFile(root, link.Path, header, 0o600) }, []fileset.File{link}},
		"link replaced by file": {makeLink, []fileset.File{{Path: link.Path, Mode: 0o640, Data: []byte(header)}}},
	}
	for name, c := range cases {
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/known=%v", name, known), func(t *testing.T) {
				dir := t.TempDir()
				c.before(dir)
				before := snapshot(t, dir)
				root, err := rootfs.Open(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer root.Close()
				changes, err := filesync.Compute(root, c.want, ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs)
				if err != nil {
					t.Fatal(err)
				}
				if err := filesync.Apply(root, changes); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(snapshot(t, dir)) == fmt.Sprint(before) {
					t.Fatalf("the run changed nothing: %+v", changes)
				}
				// A later run reads the undo from the record as JSON.
				tx := &record.Transaction{Undo: undo(changes)}
				data, err := json.Marshal(tx)
				if err != nil {
					t.Fatal(err)
				}
				tx = &record.Transaction{}
				if err := json.Unmarshal(data, tx); err != nil {
					t.Fatal(err)
				}
				for _, ph := range undoPhases(tx, []phase{{changes: changes}}, known) {
					if err := filesync.Apply(root, ph.changes); err != nil {
						t.Fatal(err)
					}
				}
				if after := snapshot(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Errorf("after the undo:\n%v\nwant:\n%v", after, before)
				}
			})
		}
	}
}

// TestOldUndoRecordsReadAsFiles: a record written before links, with no link key, undoes to the file it holds.
func TestOldUndoRecordsReadAsFiles(t *testing.T) {
	var tx record.Transaction
	if err := json.Unmarshal([]byte(`{"undo":[{"path":"etc/x","existed":true,"data":"eA==","mode":384}]}`), &tx); err != nil {
		t.Fatal(err)
	}
	c := undoPhases(&tx, nil, false)[0].changes[0]
	if c.Link != "" || string(c.New) != "x" || c.Mode != 0o600 || c.Kind != filesync.Update {
		t.Errorf("undo of an old record: %+v", c)
	}
}

// TestTargetStateRecordsLinks: the record lists a link by its target, with no mode, whatever mode the file was
// handed on with.
func TestTargetStateRecordsLinks(t *testing.T) {
	req := Request{Plan: &plan.Plan{}, Files: []fileset.File{{Path: ownership.ConnmarkWantsLink, Mode: os.ModeSymlink | 0o777, Link: "/" + ownership.ConnmarkUnitPath}}}
	got := targetState(req).Files
	if len(got) != 1 || got[0].Link != "/"+ownership.ConnmarkUnitPath || got[0].Mode != 0 || got[0].Path != ownership.ConnmarkWantsLink {
		t.Errorf("recorded %+v", got)
	}
}
