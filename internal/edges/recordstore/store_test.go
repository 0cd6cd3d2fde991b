package recordstore

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/rootfs"
	_ "github.com/symroute/symroute/internal/tools/golden"
)

func openRoot(t *testing.T) (*rootfs.Root, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := rootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

// TestSaveLoad: a record survives the round trip exactly, is written mode 0600 with no temporary file left, and
// a root without one reads as empty.
func TestSaveLoad(t *testing.T) {
	root, dir := openRoot(t)
	empty, err := Load(root)
	if err != nil || empty.Applied != nil || empty.Pending != nil {
		t.Fatalf("empty root: %+v, %v", empty, err)
	}
	rec := &record.Record{
		Applied: &record.State{Files: []record.File{{Path: "etc/x", SHA256: record.Hash([]byte("x")), Mode: 0o644}},
			Rules: []record.Rule{{Priority: 20010, From: netip.MustParsePrefix("10.0.0.1/32"), Table: 1000000}}},
		Pending: &record.Transaction{ID: "t1", Op: record.OpTry, Started: time.Unix(1, 0).UTC(), Deadline: time.Unix(2, 0).UTC(),
			Undo: []record.FileUndo{{Path: "etc/x", Existed: true, Data: []byte("old\x00bytes"), Mode: 0o600}}},
	}
	if err := Save(root, rec); err != nil {
		t.Fatal(err)
	}
	got, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Pending.Undo[0].Data) != "old\x00bytes" {
		t.Errorf("round trip: %+v", got)
	}
	info, err := os.Stat(filepath.Join(dir, Dir, Name))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("record mode: %v %v", info, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, Dir))
	if len(entries) != 1 {
		t.Errorf("left in %s: %v", Dir, entries)
	}
}

// TestLoadRefusesWhatItCannotRead: a record of another format or with unknown fields is refused, not guessed at:
// it decides what is symroute's.
func TestLoadRefusesWhatItCannotRead(t *testing.T) {
	for body, want := range map[string]string{
		`{"version": 2}`:               "format 2",
		`{"version": 1, "owned": []}`:  "unknown field",
		`{"version": 1, "applied": 7}`: "cannot unmarshal",
	} {
		root, dir := openRoot(t)
		os.MkdirAll(filepath.Join(dir, Dir), 0o755)
		os.WriteFile(filepath.Join(dir, Dir, Name), []byte(body), 0o600)
		if _, err := Load(root); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

func TestRuleString(t *testing.T) {
	r := record.Rule{Priority: 20000, To: netip.MustParsePrefix("10.244.0.0/16"), Table: 254}
	if got := r.String(); got != "20000: from all to 10.244.0.0/16 lookup main" {
		t.Errorf("%s", got)
	}
}
