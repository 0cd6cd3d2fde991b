package apply

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/edges/filesync"
	"github.com/symroute/symroute/internal/orchestration/state"
)

// tracked is twoNIC with eth-b tracking connections.
const tracked = twoNIC + "    track_connections: true\n"

// TestConnmarkTableFollowsTheDescription: apply loads the table after networkd took the files up and records
// it; a table deleted or altered by someone is loaded again by the next apply, though no file changed; when no
// interface tracks connections any more, the table goes; remove deletes it.
func TestConnmarkTableFollowsTheDescription(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(tracked, Options{}))
	tr := h.os.Transcript()
	if h.os.nft == "" || h.record().Applied.Connmark != h.os.nft {
		t.Fatalf("table %q, recorded %q\n%s", h.os.nft, h.record().Applied.Connmark, tr)
	}
	if i, j := strings.Index(tr, "networkd: reload"), strings.Index(tr, "nft: load"); i < 0 || j < i || !strings.Contains(tr, "systemd: daemon-reload") {
		t.Errorf("want networkd's reload, then the table loaded, and systemd told of the unit:\n%s", tr)
	}
	if !strings.Contains(h.rules(), "fwmark 0x2800/0x3c00 iif eth-b lookup main") {
		t.Errorf("rules: %s", h.rules())
	}

	loaded := h.os.nft
	for _, change := range []struct {
		name string
		do   func()
		kind drift.Kind
	}{
		{"deleted", func() { h.os.nft = "" }, drift.ConnmarkMissing},
		{"altered", func() { h.os.nft = "someone else's rules" }, drift.ConnmarkAltered},
	} {
		change.do()
		res := h.verify(tracked)
		if len(res.Findings) != 1 || res.Findings[0].Kind != change.kind || res.Findings[0].Line != 10 {
			t.Errorf("%s: findings %+v", change.name, res.Findings)
		}
		ok(t)(h.apply(tracked, Options{}))
		if tr := h.os.Transcript(); h.os.nft != loaded || !strings.Contains(tr, "nft: load") || strings.Contains(tr, "networkd") {
			t.Errorf("%s: table %q, want %q; the apply did:\n%s", change.name, h.os.nft, loaded, tr)
		}
	}

	ok(t)(h.apply(twoNIC, Options{}))
	if h.os.nft != "" || h.record().Applied.Connmark != "" || strings.Contains(h.rules(), "fwmark") {
		t.Errorf("untracked: table %q, rules %s", h.os.nft, h.rules())
	}
	ok(t)(h.apply(tracked, Options{}))
	if _, _, err := h.engine(Options{}).Remove(context.Background(), true); err != nil || h.os.nft != "" {
		t.Errorf("remove: err %v, table %q", err, h.os.nft)
	}
}

// TestConnmarkRollsBack: a run that changes a loaded table and then fails verification puts the previous table
// back; a run that loads one where there was none deletes it again.
func TestConnmarkRollsBack(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b", "eth-c")
	eth := func(desc string) string {
		return desc + "  - name: eth-c\n    addresses: [10.1.0.1/24]\n    gateway: 10.1.0.254\n    track_connections: true\n"
	}
	ok(t)(h.apply(tracked, Options{}))
	before := h.os.nft
	// Another program's rule sends eth-c's replies elsewhere: verification fails once the table is loaded.
	h.os.rules = append(h.os.rules, kernelRule(100, "10.1.0.1/32", 99, 3))
	h.os.routes = append(h.os.routes, routing.Route{Family: 2, Gateway: netip.MustParseAddr("192.168.1.1"), Table: 99, LinkIndex: h.os.links["eth-a"]})
	h.log.Reset()
	out, err := h.engine(Options{Timeout: 200 * time.Millisecond}).Apply(context.Background(), h.request(eth(tracked), record.OpApply))
	if err != nil || !out.RolledBack || h.os.nft != before || !strings.Contains(h.log.String(), "verification failed") {
		t.Fatalf("err %v, rolled back %v, table %q, want the previous %q\n%s", err, out.RolledBack, h.os.nft, before, h.log.String())
	}
	if strings.Count(h.log.String(), "loaded nftables table inet symroute from") != 2 {
		t.Errorf("want the new table loaded, then the previous one again:\n%s", h.log.String())
	}

	ok(t)(h.apply(twoNIC, Options{}))
	h.log.Reset()
	out, err = h.engine(Options{Timeout: 200 * time.Millisecond}).Apply(context.Background(), h.request(eth(twoNIC), record.OpApply))
	if err != nil || !out.RolledBack || h.os.nft != "" || !strings.Contains(h.log.String(), "deleted nftables table inet symroute, which the run loaded") {
		t.Fatalf("err %v, rolled back %v, table %q, want none\n%s", err, out.RolledBack, h.os.nft, h.log.String())
	}
}

// verify checks the host against desc as symroute verify does, with the record as it stands.
func (h *host) verify(desc string) drift.Result {
	h.t.Helper()
	req := h.request(desc, record.OpApply)
	expect := drift.Expect{NetworkFiles: generator.ExpectedNetworkFiles(req.Files), Recorded: h.record().Applied}
	res, err := state.Verify(context.Background(), req.Plan, expect, h.engine(Options{}).sources())
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// TestConnmarkWithoutNftablesChangesNothing: a host where nftables cannot work is refused before any file is
// written.
func TestConnmarkWithoutNftablesChangesNothing(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	before := h.files()
	h.os.fail["nft available"] = errors.New("nft is neither at /usr/sbin/nft nor on PATH (install nftables)")
	_, err := h.apply(tracked, Options{})
	if err == nil || !strings.Contains(err.Error(), "install nftables") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("err %v", err)
	}
	if fmt.Sprint(h.files()) != fmt.Sprint(before) || h.record().Pending != nil {
		t.Error("files or the record changed")
	}
}

// TestConnmarkLeavesAnotherProgramsTable: a table inet symroute that neither the record nor a file of symroute's
// accounts for is refused before anything changes; one loaded at boot from symroute's own file is taken over.
func TestConnmarkLeavesAnotherProgramsTable(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	h.os.nft = "someone else's"
	before := h.files()
	_, err := h.apply(tracked, Options{})
	if err == nil || !strings.Contains(err.Error(), "another program's") || h.os.nft != "someone else's" || fmt.Sprint(h.files()) != fmt.Sprint(before) {
		t.Fatalf("err %v, table %q", err, h.os.nft)
	}
	// generate wrote the files, and the unit loaded the table at boot: no record, but symroute's file.
	req := h.request(tracked, record.OpApply)
	changes, err := filesync.Compute(h.root, req.Files, ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs)
	if err != nil {
		t.Fatal(err)
	}
	if err := filesync.Apply(h.root, changes); err != nil {
		t.Fatal(err)
	}
	ok(t)(h.apply(tracked, Options{}))
	if h.os.nft == "someone else's" || h.record().Applied.Connmark != h.os.nft {
		t.Errorf("table %q, recorded %q", h.os.nft, h.record().Applied.Connmark)
	}
}

// TestConnmarkUndoWithoutItsFileFinishes: an undo whose table cannot be put back (the file it came from is gone)
// says so and returns without error; and a rollback whose table undo fails (nft refuses the delete) still
// finishes, leaving no transaction pending for every later run to trip on.
func TestConnmarkUndoWithoutItsFileFinishes(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b", "eth-c")
	ok(t)(h.apply(tracked, Options{}))
	// Another run's undo finds the table, but not its file: generate removed it meanwhile.
	if err := os.Remove(filepath.Join(h.dir, ownership.ConnmarkRulesetPath)); err != nil {
		t.Fatal(err)
	}
	tx := &record.Transaction{ID: "x", Op: record.OpApply, ConnmarkBefore: "the previous table"}
	if err := h.engine(Options{}).undoConnmark(context.Background(), tx); err != nil || !strings.Contains(h.log.String(), "is not there to load it again from") {
		t.Errorf("err %v\n%s", err, h.log.String())
	}

	ok(t)(h.apply(twoNIC, Options{})) // no table now
	// Another program's rule sends eth-c's replies elsewhere: verification fails after the table is loaded, and
	// the undo's delete of it fails.
	h.os.rules = append(h.os.rules, kernelRule(100, "10.1.0.1/32", 99, 3))
	h.os.routes = append(h.os.routes, routing.Route{Family: 2, Gateway: netip.MustParseAddr("192.168.1.1"), Table: 99, LinkIndex: h.os.links["eth-a"]})
	h.os.fail["nft delete"] = errors.New("nft: the kernel refused")
	withC := twoNIC + "  - name: eth-c\n    addresses: [10.1.0.1/24]\n    gateway: 10.1.0.254\n    track_connections: true\n"
	h.log.Reset()
	out, err := h.engine(Options{Timeout: 200 * time.Millisecond}).Apply(context.Background(), h.request(withC, record.OpApply))
	if err != nil || !out.RolledBack || h.record().Pending != nil || !strings.Contains(h.log.String(), "was not put back") {
		t.Fatalf("err %v, rolled back %v, pending %v\n%s", err, out.RolledBack, h.record().Pending != nil, h.log.String())
	}
}

// TestRecoverAtBootPutsTheTableBack: a try that stopped tracking connections, never confirmed, is undone at boot
// before networkd runs. systemd read no wants link for the unit this boot (the try had removed it), so recovery
// itself loads the table from the file it puts back.
func TestRecoverAtBootPutsTheTableBack(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(tracked, Options{}))
	loaded := h.os.nft
	out, err := h.engine(Options{}).Apply(context.Background(), h.request(twoNIC, record.OpTry))
	if err != nil || !out.Verified || h.os.nft != "" {
		t.Fatalf("try: err %v, verified %v, table %q", err, out.Verified, h.os.nft)
	}
	// The boot: the kernel holds no table, and the try is still pending.
	h.os.nft = ""
	e, err := New(Options{Root: h.root, Log: &h.log}, h.os.deps())
	if err != nil {
		t.Fatal(err)
	}
	if e.Record().Pending == nil {
		t.Fatal("no pending try to recover")
	}
	if err := e.RecoverFiles(); err != nil {
		t.Fatal(err)
	}
	if h.os.nft != loaded || h.record().Pending != nil {
		t.Errorf("after recovery: table %q, want %q; pending %v\n%s", h.os.nft, loaded, h.record().Pending != nil, h.log.String())
	}
}

// TestMovingAMarkIsRefused: removing an interface from the middle of the list moves the marks of those after
// it; open connections carry the old one, so apply refuses unless forced, and changes nothing.
func TestMovingAMarkIsRefused(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(tracked, Options{}))
	before := h.files()
	// eth-b first: its position, and so its mark, changes.
	swapped := "version: 1\ninterfaces:\n  - name: eth-b\n    addresses: [10.0.0.1/24]\n    gateway: 10.0.0.254\n    track_connections: true\n" +
		"  - name: eth-a\n    addresses: [192.168.1.10/24]\n    gateway: 192.168.1.1\n    default_route: true\n"
	_, err := h.apply(swapped, Options{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "moves the connection marks of eth-b") || fmt.Sprint(h.files()) != fmt.Sprint(before) {
		t.Fatalf("err %v", err)
	}
	ok(t)(h.apply(swapped, Options{Force: true}))

	// eth-b gives its place, and its mark, to eth-c: eth-b's open connections would leave by eth-c.
	h2 := newHost(t, "eth-a", "eth-b", "eth-c")
	ok(t)(h2.apply(tracked, Options{}))
	taken := "version: 1\ninterfaces:\n  - name: eth-a\n    addresses: [192.168.1.10/24]\n    gateway: 192.168.1.1\n    default_route: true\n" +
		"  - name: eth-c\n    addresses: [10.1.0.1/24]\n    gateway: 10.1.0.254\n    track_connections: true\n"
	if _, err := h2.apply(taken, Options{}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "eth-b (its mark 0x2800/0x3c00 goes to eth-c)") {
		t.Errorf("err %v", err)
	}
}

// TestRemoveUndoLeavesAnotherProgramsTable: a removal that fails is undone, and the undo leaves alone an
// inet symroute table that symroute never loaded (the removal left it alone too).
func TestRemoveUndoLeavesAnotherProgramsTable(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	h.os.nft = "someone else's"
	h.os.fail["reload"] = errors.New("networkd does not answer")
	if _, _, err := h.engine(Options{}).Remove(context.Background(), true); err == nil {
		t.Fatal("the removal did not fail")
	}
	if h.os.nft != "someone else's" || h.record().Pending != nil {
		t.Errorf("table %q, pending %v\n%s", h.os.nft, h.record().Pending != nil, h.log.String())
	}
}

// TestPhaseFailingBeforeItsRestartIsUndoneWithoutOne: the drop-in phase fails while writing, before networkd is
// restarted; its undo restarts nothing either.
func TestPhaseFailingBeforeItsRestartIsUndoneWithoutOne(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	h.os.Transcript()
	e := h.engine(Options{})
	failed := false
	e.writeHook = func(changes []filesync.Change) error {
		if !failed {
			failed = true
			return errors.New("disk full")
		}
		return filesync.Apply(h.root, changes)
	}
	withCNI := strings.Replace(twoNIC, "version: 1\n", "version: 1\ncni: [docker]\n", 1)
	out, err := e.Apply(context.Background(), h.request(withCNI, record.OpApply))
	if err == nil || !out.RolledBack {
		t.Fatalf("err %v, rolled back %v", err, out.RolledBack)
	}
	if tr := h.os.Transcript(); strings.Contains(tr, "restart") {
		t.Errorf("the undo restarted networkd, which the run never did:\n%s", tr)
	}
}

// TestUnitsStartOnlyOnTheRunningSystem: a root that is a test's tree leaves symroute-connmark.service to the next
// boot; a root that is the running system's though mounted elsewhere (the node agent's /host) has systemd start
// it now, as on "/", so that a reload of nftables.service, which flushes the ruleset, loads the table again.
func TestUnitsStartOnlyOnTheRunningSystem(t *testing.T) {
	for _, running := range []bool{false, true} {
		h := newHost(t, "eth-a", "eth-b")
		var restarted []string
		e := h.engine(Options{RunningSystem: running})
		e.deps.RestartConnmark = func(context.Context) error {
			restarted = append(restarted, ownership.ConnmarkUnit)
			return nil
		}
		if out, err := e.Apply(context.Background(), h.request(tracked, record.OpApply)); err != nil || !out.Verified {
			t.Fatalf("running system %v: err %v, outcome %+v\n%s", running, err, out, h.log.String())
		}
		if started := len(restarted) > 0; started != running {
			t.Errorf("running system %v: %s started %v", running, ownership.ConnmarkUnit, restarted)
		}
	}
}
