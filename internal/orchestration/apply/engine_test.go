package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/edges/filesync"
	"github.com/symroute/symroute/internal/edges/recordstore"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/edges/sockets"
	_ "github.com/symroute/symroute/internal/tools/golden"
	"github.com/symroute/symroute/internal/tools/plantest"
)

// host is one test's fake OS with a root of its own.
type host struct {
	t    *testing.T
	dir  string
	root *rootfs.Root
	os   *fakeOS
	log  bytes.Buffer
}

func newHost(t *testing.T, links ...string) *host {
	t.Helper()
	dir := t.TempDir()
	r, err := rootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &host{t: t, dir: dir, root: r, os: newFakeOS(r, links...)}
}

// request renders desc for the host's root, as the command line does.
func (h *host) request(desc string, op record.Op) Request {
	h.t.Helper()
	hst, rep := description.Parse([]byte(desc))
	if rep.HasErrors(false) {
		h.t.Fatal(rep.Entries)
	}
	p, rep := plan.Build(hst)
	if rep.HasErrors(false) {
		h.t.Fatal(rep.Entries)
	}
	files, rep, err := generator.Generate(p, generator.Options{Source: "host.yaml", Root: h.root.ReadFS()})
	if err != nil || rep.HasErrors(false) {
		h.t.Fatal(err, rep.Entries)
	}
	return Request{Plan: p, Files: files, Description: "host.yaml", Op: op}
}

func (h *host) engine(opts Options) *Engine {
	h.t.Helper()
	opts.Root = h.root
	opts.Log = &h.log
	if opts.Timeout == 0 {
		opts.Timeout = 3 * time.Second
	}
	opts.Poll = 2 * time.Millisecond
	e, err := New(opts, h.os.deps())
	if err != nil {
		h.t.Fatal(err)
	}
	if err := e.Recover(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	return e
}

func (h *host) apply(desc string, opts Options) (Outcome, error) {
	h.t.Helper()
	return h.engine(opts).Apply(context.Background(), h.request(desc, record.OpApply))
}

// files returns every file under the root but the record and the lock, with its mode.
func (h *host) files() map[string]string {
	h.t.Helper()
	out := map[string]string{}
	filepath.WalkDir(h.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(p, recordstore.Dir) {
			return err
		}
		info, _ := d.Info()
		data, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(h.dir, p)
		out[rel] = fmt.Sprintf("%04o %x", info.Mode().Perm(), data)
		return nil
	})
	return out
}

func (h *host) record() *record.Record {
	h.t.Helper()
	rec, err := recordstore.Load(h.root)
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

func (h *host) rules() string {
	var s []string
	for _, r := range h.os.rules {
		if r.Protocol != 2 {
			s = append(s, ownership.RuleOf(r).String())
		}
	}
	return strings.Join(s, "; ")
}

const twoNIC = plantest.TwoNIC

func mustOK(t *testing.T, out Outcome, err error) {
	t.Helper()
	if err != nil || !out.Verified {
		t.Fatalf("err %v, verified %v, findings %+v", err, out.Verified, out.Result.Findings)
	}
}

// ok adapts mustOK to a call's two results: ok(t)(h.apply(...)).
func ok(t *testing.T) func(Outcome, error) {
	return func(out Outcome, err error) { t.Helper(); mustOK(t, out, err) }
}

// TestApplyThenNothingToDo: a first apply writes, reloads, sets symroute's sysctl keys and verifies; the record
// then lists exactly what it made; a second apply changes nothing and reloads nothing.
func TestApplyThenNothingToDo(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	out, err := h.apply(twoNIC, Options{})
	mustOK(t, out, err)
	tr := h.os.Transcript()
	for _, want := range []string{"networkd: reload", "sysctl: apply net.ipv4.conf.eth-a.rp_filter net.ipv4.conf.eth-b.rp_filter"} {
		if !strings.Contains(tr, want) {
			t.Errorf("transcript lacks %q:\n%s", want, tr)
		}
	}
	rec := h.record()
	if rec.Pending != nil || rec.Applied == nil || len(rec.Applied.Rules) != 2 || len(rec.Applied.Files) != 4 {
		t.Fatalf("record: %+v", rec)
	}
	if s, _ := rec.Applied.Sysctl("net.ipv4.conf.eth-a.rp_filter"); s.Original != "0" || s.Value != "2" {
		t.Errorf("recorded sysctl %+v", s)
	}
	out, err = h.apply(twoNIC, Options{})
	mustOK(t, out, err)
	if tr := h.os.Transcript(); tr != "" || len(out.Changes) != 0 {
		t.Errorf("second apply did %q, changes %v", tr, out.Changes)
	}
}

// TestGuardRefusesToCutAConnection: changing eth-a's address while a connection uses it changes nothing and
// names the connection; --force goes ahead.
func TestGuardRefusesToCutAConnection(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	h.os.Transcript()
	ssh := sockets.Conn{Local: netip.MustParseAddrPort("192.168.1.10:22"), Remote: netip.MustParseAddrPort("10.9.9.9:50000"), Process: "sshd[812]"}
	h.os.conns = []sockets.Conn{ssh}
	before := h.files()
	changed := strings.Replace(twoNIC, "192.168.1.10/24", "192.168.1.11/24", 1)
	out, err := h.apply(changed, Options{})
	if !errors.Is(err, ErrRefused) || len(out.Connections) != 1 || !strings.Contains(h.log.String(), "sshd[812]") {
		t.Fatalf("err %v, connections %v\n%s", err, out.Connections, h.log.String())
	}
	if !strings.Contains(h.log.String(), "will remove address 192.168.1.10/24 from eth-a") {
		t.Errorf("the removal was not announced:\n%s", h.log.String())
	}
	if tr := h.os.Transcript(); tr != "" || fmt.Sprint(h.files()) != fmt.Sprint(before) || h.record().Pending != nil {
		t.Fatalf("a refused apply changed something: %s", tr)
	}
	out, err = h.apply(changed, Options{Force: true})
	mustOK(t, out, err)
	if got := h.os.addrs[2]; len(got) != 1 || got[0].String() != "192.168.1.11/24" {
		t.Errorf("eth-a has %v", got)
	}
}

// TestFailureAtEachStepRollsBackExactly injects a failure at each step after the first file is written and
// requires the exact inverse: every file's bytes and mode as before, sysctl values as before, no rule of the
// run's left, and no pending record.
func TestFailureAtEachStepRollsBackExactly(t *testing.T) {
	for _, step := range []string{"reload", "sysctl-apply", "delete-rule", "never-configured", "verify"} {
		t.Run(step, func(t *testing.T) {
			h := newHost(t, "eth-a", "eth-b", "eth-c")
			ok(t)(h.apply(twoNIC, Options{}))
			// A file whose mode was changed by hand must come back with that mode.
			own := filepath.Join(h.dir, ownership.OwnNetworkPath("eth-b"))
			os.Chmod(own, 0o600)
			// The next description drops eth-b's rule (a stale recorded rule to delete) and adds eth-c.
			next := strings.Replace(twoNIC, "  - name: eth-b\n    addresses: [10.0.0.1/24]\n    gateway: 10.0.0.254\n", "  - name: eth-c\n    addresses: [10.1.0.1/24]\n    gateway: 10.1.0.254\n", 1)
			h.os.forgetRules() // as a networkd restarted with foreign rules kept: eth-b's rule stays, only the record knows it
			before, sysBefore := h.files(), fmt.Sprint(h.os.sysctls)
			switch step {
			case "never-configured":
				h.os.neverConfigure["eth-c"] = true
			case "verify":
				h.os.ignore["eth-c"] = true
			default:
				h.os.fail[step] = errors.New("injected")
			}
			out, err := h.engine(Options{Timeout: 300 * time.Millisecond}).Apply(context.Background(), h.request(next, record.OpApply))
			if !out.RolledBack {
				t.Fatalf("no rollback: err %v\n%s", err, h.log.String())
			}
			if tr := h.os.Transcript(); step != "verify" && step != "never-configured" && !strings.Contains(tr, step+": fails") {
				t.Fatalf("the failure was not injected where meant:\n%s", tr)
			}
			h.os.fail, h.os.neverConfigure, h.os.ignore = map[string]error{}, map[string]bool{}, map[string]bool{}
			if after := h.files(); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("files differ after the rollback:\nbefore %v\nafter  %v", before, after)
			}
			if fmt.Sprint(h.os.sysctls) != sysBefore {
				t.Errorf("sysctls %v, want %s", h.os.sysctls, sysBefore)
			}
			if rec := h.record(); rec.Pending != nil || len(rec.Applied.Rules) != 2 {
				t.Errorf("record after the rollback: %+v", rec)
			}
			if strings.Contains(h.rules(), "10.1.0.1") {
				t.Errorf("the run's rule is left: %s", h.rules())
			}
		})
	}
}

// TestInterruptRollsBack: a signal (the context cancelled) while networkd works is answered with the rollback, in
// a context of its own.
func TestInterruptRollsBack(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	before := h.files()
	ctx, cancel := context.WithCancel(context.Background())
	h.os.neverConfigure["eth-a"] = true
	h.os.onReload = func() { time.AfterFunc(20*time.Millisecond, cancel) }
	out, err := h.engine(Options{Timeout: 5 * time.Second}).Apply(ctx, h.request(strings.Replace(twoNIC, "gateway: 192.168.1.1", "gateway: 192.168.1.2", 1), record.OpApply))
	h.os.onReload = nil
	h.os.neverConfigure = map[string]bool{}
	if !out.Interrupted || !out.RolledBack || err == nil {
		t.Fatalf("interrupted %v, rolled back %v, err %v", out.Interrupted, out.RolledBack, err)
	}
	if fmt.Sprint(h.files()) != fmt.Sprint(before) || h.record().Pending != nil {
		t.Error("the interrupted run was not undone")
	}
}

// TestUnfinishedRunIsUndoneByTheNext: a run that died after writing its files and before networkd took them up
// (the record pending) is undone by the next run, which then converges; before this, every later apply said
// "no file changed" and networkd kept the old configuration.
func TestUnfinishedRunIsUndoneByTheNext(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	before := h.files()
	changed := strings.Replace(twoNIC, "gateway: 10.0.0.254", "gateway: 10.0.0.253", 1)
	func() {
		defer func() { recover() }()
		h.os.onReload = func() { panic(errDie) }
		h.apply(changed, Options{})
	}()
	h.os.onReload = nil
	if rec := h.record(); rec.Pending == nil {
		t.Fatal("the dead run left no pending record")
	}
	if fmt.Sprint(h.files()) == fmt.Sprint(before) {
		t.Fatal("the run died before writing its files; the test needs them written")
	}
	e := h.engine(Options{}) // Recover runs here
	if fmt.Sprint(h.files()) != fmt.Sprint(before) || e.Record().Pending != nil {
		t.Fatal("the unfinished run was not undone")
	}
	out, err := e.Apply(context.Background(), h.request(changed, record.OpApply))
	mustOK(t, out, err)
	if !strings.Contains(h.os.Transcript(), "networkd: reload") {
		t.Error("the next apply did not have networkd take the files up")
	}
}

var errDie = errors.New("the process died")

// TestRestartForComponentsAndItsInverse: declaring a component writes networkd.conf.d, so networkd is restarted
// (never silently reloaded); where no systemd manager answers the change is refused before anything is written;
// a failure after the restart is rolled back with a restart too.
func TestRestartForComponentsAndItsInverse(t *testing.T) {
	withCNI := strings.Replace(twoNIC, "version: 1\n", "version: 1\ncni: [docker]\n", 1)
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	h.os.Transcript()
	before := h.files()

	h.os.noManager = true
	if _, err := h.apply(withCNI, Options{}); err == nil || !strings.Contains(err.Error(), "cannot restart") {
		t.Fatalf("without a manager: %v", err)
	}
	if fmt.Sprint(h.files()) != fmt.Sprint(before) {
		t.Fatal("files changed though the restart was impossible")
	}
	h.os.noManager = false
	h.os.Transcript()

	h.os.neverConfigure["eth-b"] = true
	out, _ := h.apply(withCNI, Options{Timeout: 200 * time.Millisecond})
	h.os.neverConfigure = map[string]bool{}
	tr := h.os.Transcript()
	if !out.RolledBack || strings.Count(tr, "restart systemd-networkd") != 2 || strings.Contains(tr, "reload") {
		t.Fatalf("want a restart forward and one back, no reload:\n%s", tr)
	}
	ok(t)(h.apply(withCNI, Options{}))
	if !h.os.keepForeign {
		t.Error("networkd was not restarted with the drop-in")
	}
}

// TestOldNetworkdRefusedForComponents: networkd before 249 ignores ManageForeignRoutingPolicyRules, so it is
// refused where components are declared, and under --strict.
func TestOldNetworkdRefusedForComponents(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	h.os.version = 247
	if _, err := h.apply(strings.Replace(twoNIC, "version: 1\n", "version: 1\ncni: [calico]\ncluster_cidrs: [10.244.0.0/16]\n", 1), Options{}); err == nil || !strings.Contains(err.Error(), "249") {
		t.Fatalf("err %v", err)
	}
	if _, err := h.apply(twoNIC, Options{Strict: true}); err == nil {
		t.Fatal("--strict accepted networkd 247")
	}
	ok(t)(h.apply(twoNIC, Options{})) // without components nothing depends on 249
}

// TestStaleRecordedRulesOnlyAreDeleted: after a restart with foreign rules kept, a rule symroute made that its
// files no longer configure stays in the kernel; apply deletes it because the record lists it, and never an
// administrator's rule in a gap of the range.
func TestStaleRecordedRulesOnlyAreDeleted(t *testing.T) {
	withCNI := strings.Replace(twoNIC, "version: 1\n", "version: 1\ncni: [docker]\n", 1)
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(withCNI, Options{}))
	h.os.rules = append(h.os.rules, kernelRule(20015, "10.9.9.9/32", 77, 4)) // the admin's, made with networkd elsewhere
	onlyA := strings.Replace(withCNI, "  - name: eth-b\n    addresses: [10.0.0.1/24]\n    gateway: 10.0.0.254\n", "", 1)
	// networkd restarted since (a reboot, an upgrade): told to keep foreign rules, it forgot its own.
	h.os.forgetRules()
	ok(t)(h.apply(onlyA, Options{}))
	tr := h.os.Transcript()
	if !strings.Contains(tr, "kernel: delete rule 20020: from 10.0.0.1 lookup 1000001") {
		t.Errorf("the stale rule was not deleted:\n%s", tr)
	}
	if !strings.Contains(h.rules(), "20015: from 10.9.9.9 lookup 77") || strings.Contains(tr, "delete rule 20015") {
		t.Errorf("the administrator's rule was touched: %s", h.rules())
	}
}

// TestRemoveKeepsAddressesUnlessForced: remove restores symroute's sysctl keys to their values from before
// symroute, deletes its rules, keeps each own file stripped of routing (the link keeps its addresses) and
// leaves an administrator's rule alone; remove --all then deletes the files.
func TestRemoveKeepsAddressesUnlessForced(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	h.os.sysctls[sysctlKeyFor("eth-a")] = "1"
	ok(t)(h.apply(twoNIC, Options{}))
	h.os.rules = append(h.os.rules, kernelRule(20015, "10.9.9.9/32", 77, 0))
	out, rm, err := h.engine(Options{}).Remove(context.Background(), false)
	if err != nil {
		t.Fatalf("remove: %v\n%s", err, h.log.String())
	}
	if len(out.Lost.Addresses) != 0 || len(rm.Kept) != 2 || len(rm.Remaining) != 0 {
		t.Fatalf("lost %v, kept %v, remaining %v", out.Lost.Addresses, rm.Kept, rm.Remaining)
	}
	if h.os.sysctls[sysctlKeyFor("eth-a")] != "1" || h.os.sysctls[sysctlKeyFor("eth-b")] != "0" {
		t.Errorf("sysctls not restored: %v", h.os.sysctls)
	}
	if got := h.rules(); got != "20015: from 10.9.9.9 lookup 77" {
		t.Errorf("rules after remove: %s", got)
	}
	if got := h.os.addrs[2]; len(got) != 1 {
		t.Errorf("eth-a lost its address: %v", got)
	}
	files := h.files()
	kept := filepath.Join(ownership.OwnNetworkPath("eth-a"))
	if len(files) != 2 || files[kept] == "" {
		t.Errorf("files after remove: %v", files)
	}
	_, _, err = h.engine(Options{}).Remove(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if files := h.files(); len(files) != 0 || h.record().Applied != nil {
		t.Errorf("remove --all left %v", files)
	}
}

// TestTryConfirmOrRollBack: a try starts its watcher before the first file changes; while the watcher lives the
// try stays pending, and no other run undoes it; RollbackPending undoes it exactly and checks the routing from
// before the try; Confirm keeps it.
func TestTryConfirmOrRollBack(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	before := h.files()
	changed := strings.Replace(twoNIC, "gateway: 10.0.0.254", "gateway: 10.0.0.253", 1)
	watcher := record.Process{PID: 4242, Start: 7}
	req := h.request(changed, record.OpTry)
	req.Deadline = time.Now().Add(time.Minute)
	req.Watch = func(tx *record.Transaction) (record.Process, error) {
		if fmt.Sprint(h.files()) != fmt.Sprint(before) {
			t.Error("files changed before the watcher started")
		}
		if rec := h.record(); rec.Pending == nil || rec.Pending.ID != tx.ID {
			t.Error("the watcher started before the pending record was written")
		}
		h.os.running[watcher] = true
		return watcher, nil
	}
	e := h.engine(Options{})
	out, err := e.Apply(context.Background(), req)
	mustOK(t, out, err)
	if rec := h.record(); rec.Pending == nil || !rec.Pending.Verified || rec.Pending.Watcher == nil || *rec.Pending.Watcher != watcher {
		t.Fatalf("a verified try is not pending with its watcher: %+v", rec.Pending)
	}
	id := e.Record().Pending.ID
	other, err := New(Options{Root: h.root, Timeout: time.Second, Poll: time.Millisecond, Log: &h.log}, h.os.deps())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Recover(context.Background()); !errors.Is(err, ErrTryPending) {
		t.Fatalf("another run while the watcher lives: %v", err)
	}
	if fmt.Sprint(h.files()) == fmt.Sprint(before) {
		t.Fatal("the try was undone while its watcher lived")
	}
	if _, err := other.Confirm("another-id"); err == nil {
		t.Fatal("confirmed a try by the wrong id")
	}
	rb, err := other.RollbackPending(context.Background(), id, "not confirmed")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(h.files()) != fmt.Sprint(before) || h.record().Pending != nil {
		t.Fatal("the try was not rolled back")
	}
	if !rb.RolledBack || !rb.PreviousChecked || !rb.PreviousBack {
		t.Fatalf("the rollback did not check the state from before the try: %+v", rb)
	}
	e = h.engine(Options{})
	req.Watch = nil
	out, err = e.Apply(context.Background(), req)
	mustOK(t, out, err)
	if _, err := e.Confirm(e.Record().Pending.ID); err != nil {
		t.Fatal(err)
	}
	if rec := h.record(); rec.Pending != nil || rec.Applied.Transaction == "" {
		t.Fatalf("confirmed record: %+v", rec)
	}
}

// TestTryWithoutWatcherChangesNothing: when the watcher cannot start, the try is refused before any file changes.
func TestTryWithoutWatcherChangesNothing(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	before := h.files()
	req := h.request(strings.Replace(twoNIC, "gateway: 10.0.0.254", "gateway: 10.0.0.253", 1), record.OpTry)
	req.Watch = func(*record.Transaction) (record.Process, error) { return record.Process{}, errors.New("fork refused") }
	h.os.Transcript()
	_, err := h.engine(Options{}).Apply(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "fork refused") {
		t.Fatalf("err %v", err)
	}
	if fmt.Sprint(h.files()) != fmt.Sprint(before) || h.record().Pending != nil || strings.Contains(h.os.Transcript(), "reload") {
		t.Fatal("the try changed something without a watcher")
	}
}

// TestRecoverFilesAtBoot: a try pending across a reboot is undone from the files alone, before networkd starts:
// every file and key as before, and nothing asked of networkd.
func TestRecoverFilesAtBoot(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b", "eth-c")
	ok(t)(h.apply(twoNIC, Options{}))
	before, sysBefore := h.files(), fmt.Sprint(h.os.sysctls)
	withC := twoNIC + "  - name: eth-c\n    addresses: [10.1.0.1/24]\n    gateway: 10.1.0.254\n"
	req := h.request(withC, record.OpTry)
	req.Deadline = time.Now().Add(time.Minute)
	ok(t)(h.engine(Options{}).Apply(context.Background(), req))
	if fmt.Sprint(h.os.sysctls) == sysBefore {
		t.Fatal("the try set no key; the test needs one")
	}
	h.os.Transcript()
	e, err := New(Options{Root: h.root, Log: &h.log}, Deps{Sysctl: fakeSysctl{h.os}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RecoverFiles(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(h.files()) != fmt.Sprint(before) || fmt.Sprint(h.os.sysctls) != sysBefore || h.record().Pending != nil {
		t.Fatalf("not undone:\nfiles %v\nwant  %v\nsysctls %v", h.files(), before, h.os.sysctls)
	}
	if tr := h.os.Transcript(); strings.Contains(tr, "networkd") {
		t.Fatalf("networkd was asked at boot:\n%s", tr)
	}
}

// TestPartialWriteIsUndone: a phase whose writes fail halfway (the first file renamed into place, the second
// not) is undone in full.
func TestPartialWriteIsUndone(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	before := h.files()
	next := strings.NewReplacer("192.168.1.10/24", "192.168.1.20/24", "10.0.0.1/24", "10.0.0.2/24").Replace(twoNIC)
	e := h.engine(Options{})
	first := true
	e.writeHook = func(changes []filesync.Change) error {
		if first && len(changes) > 1 {
			first = false
			if err := filesync.Apply(h.root, changes[:1]); err != nil {
				return err
			}
			return errors.New("rename: no space left on device")
		}
		return filesync.Apply(h.root, changes)
	}
	out, err := e.Apply(context.Background(), h.request(next, record.OpApply))
	if first || !out.RolledBack || err == nil {
		t.Fatalf("the failure was not met: rolled back %v, err %v", out.RolledBack, err)
	}
	if fmt.Sprint(h.files()) != fmt.Sprint(before) {
		t.Errorf("files differ after undoing a half-written phase:\nbefore %v\nafter  %v", before, h.files())
	}
	if rec := h.record(); rec.Pending != nil || !slices.Contains(rec.Applied.Addresses["eth-a"], netip.MustParsePrefix("192.168.1.10/24")) {
		t.Errorf("record after the undo: %+v", rec)
	}
}

// TestNoRollbackKeepsAFailedRun: with --no-rollback a run that fails before verifying still takes its remaining
// steps and records its state as applied, so the next run does not undo it.
func TestNoRollbackKeepsAFailedRun(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b", "eth-c")
	ok(t)(h.apply(twoNIC, Options{}))
	withC := twoNIC + "  - name: eth-c\n    addresses: [10.1.0.1/24]\n    gateway: 10.1.0.254\n"
	h.os.neverConfigure["eth-c"] = true
	out, err := h.engine(Options{NoRollback: true, Timeout: 200 * time.Millisecond}).Apply(context.Background(), h.request(withC, record.OpApply))
	h.os.neverConfigure = map[string]bool{}
	if err == nil || out.RolledBack || !out.Kept {
		t.Fatalf("err %v, rolled back %v, kept %v", err, out.RolledBack, out.Kept)
	}
	rec := h.record()
	if rec.Pending != nil || !slices.Contains(rec.Applied.Links, "eth-c") {
		t.Fatalf("record: %+v", rec)
	}
	if h.os.sysctls[sysctlKeyFor("eth-c")] != "2" {
		t.Errorf("eth-c's rp_filter was not set after the failure: %v", h.os.sysctls)
	}
	after := h.files()
	h.engine(Options{}) // a later run's Recover has nothing to undo
	if fmt.Sprint(h.files()) != fmt.Sprint(after) {
		t.Error("a later run undid what --no-rollback kept")
	}
}

// TestFilesWrittenOutsideApplyAreTakenUp: files generate wrote to the live root, which networkd has not read, are
// reloaded by the next apply, which then verifies, rather than saying "no file changed" for ever.
func TestFilesWrittenOutsideApplyAreTakenUp(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	changed := strings.Replace(twoNIC, "gateway: 10.0.0.254", "gateway: 10.0.0.253", 1)
	req := h.request(changed, record.OpApply)
	changes, err := filesync.Compute(h.root, req.Files, ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs)
	if err != nil || len(changes) == 0 {
		t.Fatalf("changes %v, err %v", changes, err)
	}
	if err := filesync.Apply(h.root, changes); err != nil { // symroute generate --root /
		t.Fatal(err)
	}
	h.os.Transcript()
	out, err := h.engine(Options{}).Apply(context.Background(), req)
	mustOK(t, out, err)
	if tr := h.os.Transcript(); !strings.Contains(tr, "networkd: reload") {
		t.Fatalf("not reloaded:\n%s", tr)
	}
	out, err = h.engine(Options{}).Apply(context.Background(), req)
	mustOK(t, out, err)
	if tr := h.os.Transcript(); strings.Contains(tr, "reload") {
		t.Fatalf("reloaded again once the record accounts for the files:\n%s", tr)
	}
}

// TestLookAlikeRulesAreNeverDeleted: a stale rule of symroute's is not deleted where another program's rule with
// the same priority, addresses and table but an input interface comes first (the kernel would delete that one);
// and a rule alike in every part that was there before a run is left by the run's undo.
func TestLookAlikeRulesAreNeverDeleted(t *testing.T) {
	withCNI := strings.Replace(twoNIC, "version: 1\n", "version: 1\ncni: [docker]\n", 1)
	onlyA := strings.Replace(withCNI, "  - name: eth-b\n    addresses: [10.0.0.1/24]\n    gateway: 10.0.0.254\n", "", 1)
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(withCNI, Options{}))
	h.os.forgetRules()
	narrowed := kernelRule(20020, "10.0.0.1/32", 1000001, 4)
	narrowed.Narrowed = true // iif eth9
	h.os.rules = append([]routing.Rule{narrowed}, h.os.rules...)
	ok(t)(h.apply(onlyA, Options{}))
	if tr := h.os.Transcript(); strings.Contains(tr, "delete rule 20020") {
		t.Fatalf("a delete was sent that the kernel would take for the other program's rule:\n%s", tr)
	}
	if !slices.ContainsFunc(h.os.rules, func(r routing.Rule) bool { return r.Narrowed }) {
		t.Fatal("the other program's rule is gone")
	}
	if !strings.Contains(h.log.String(), "left symroute's stale rule") {
		t.Errorf("no note on the rule left:\n%s", h.log.String())
	}

	// eth-b's rule comes back, and an identical rule is already there, made by someone else.
	h2 := newHost(t, "eth-a", "eth-b")
	ok(t)(h2.apply(twoNIC, Options{}))
	foreign := kernelRule(20030, "10.1.0.1/32", 1000002, 4)
	h2.os.rules = append(h2.os.rules, foreign)
	withC := twoNIC + "  - name: eth-c\n    addresses: [10.1.0.1/24]\n    gateway: 10.1.0.254\n"
	h2.os.links["eth-c"] = 9
	h2.os.states[9] = "unmanaged"
	h2.os.ignore["eth-c"] = true // verification fails: the run is undone
	out, _ := h2.engine(Options{Timeout: 200 * time.Millisecond}).Apply(context.Background(), h2.request(withC, record.OpApply))
	if !out.RolledBack {
		t.Fatal("no rollback")
	}
	if !slices.ContainsFunc(h2.os.rules, func(r routing.Rule) bool { return ownership.RuleOf(r) == ownership.RuleOf(foreign) }) {
		t.Fatalf("the undo deleted a rule that was there before the run: %s", h2.rules())
	}
}

func kernelRule(prio uint32, from string, table uint32, proto uint8) routing.Rule {
	return routing.Rule{Priority: prio, From: netip.MustParsePrefix(from), Table: table, Protocol: proto, Action: 1, Family: 2}
}

// TestWaitBelievesNoStaleConfigured: right after a reload networkd still reports a changed link "configured"
// (its old configuration); the wait must last until networkd has taken the link up again.
func TestWaitBelievesNoStaleConfigured(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	h.os.lag = 80 * time.Millisecond
	req := h.request(strings.Replace(twoNIC, "gateway: 10.0.0.254", "gateway: 10.0.0.253", 1), record.OpApply)
	e := h.engine(Options{Timeout: time.Minute})
	e.quiet = time.Hour // only networkd's word ends the wait, however slow the machine
	changes, err := filesync.Compute(h.root, req.Files, ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs)
	if err != nil {
		t.Fatal(err)
	}
	if err := filesync.Apply(h.root, changes); err != nil {
		t.Fatal(err)
	}
	var out Outcome
	if err := e.takeUp(context.Background(), changedLinks(changes), false, managedLinks(req.Plan), &out); err != nil {
		t.Fatal(err)
	}
	h.os.mu.Lock()
	defer h.os.mu.Unlock()
	routes := fmt.Sprint(h.os.applied[h.os.links["eth-b"]].Routes)
	if !strings.Contains(routes, "10.0.0.253") {
		t.Errorf("the wait ended before networkd took eth-b up again: it still has %s", routes)
	}
}

// TestAnyOrderConverges replays descriptions in random order, as tailscale's router tests replay states: after
// every apply the kernel holds exactly the plan's rules, and nothing else of symroute's.
func TestAnyOrderConverges(t *testing.T) {
	states := []string{
		twoNIC,
		strings.Replace(twoNIC, "version: 1\n", "version: 1\ncluster_cidrs: [10.244.0.0/16]\n", 1),
		strings.Replace(twoNIC, "192.168.1.10/24", "192.168.1.10/24, 192.168.1.20/24", 1),
		"version: 1\ninterfaces:\n  - name: eth-b\n    addresses: [10.0.0.1/24]\n    gateway: 10.0.0.254\n    priority: 20500\n",
		strings.Replace(twoNIC, "version: 1\n", "version: 1\ncni: [docker]\n", 1),
	}
	h := newHost(t, "eth-a", "eth-b")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5 * len(states) {
		desc := states[rng.IntN(len(states))]
		req := h.request(desc, record.OpApply)
		out, err := h.engine(Options{}).Apply(context.Background(), req)
		if err != nil || !out.Verified {
			t.Fatalf("step %d: err %v, findings %+v\n%s\n%s", i, err, out.Result.Findings, desc, h.log.String()[max(0, h.log.Len()-3000):])
		}
		want := map[string]bool{}
		for _, r := range req.Plan.KernelRules() {
			want[r.String()] = true
		}
		for _, r := range h.os.rules {
			if r.Protocol == 4 && !want[ownership.RuleOf(r).String()] {
				t.Fatalf("step %d: rule %s is left over\n%s", i, ownership.RuleOf(r), desc)
			}
			delete(want, ownership.RuleOf(r).String())
		}
		if len(want) > 0 {
			t.Fatalf("step %d: rules missing: %v", i, want)
		}
	}
}

// TestRestartRefusedOnAnAddressWithoutBroadcast: networkd 252 cannot start on an IPv4 address whose broadcast
// differs from its own (added by hand without brd); a change that restarts networkd first is refused before
// anything is written, and one whose restart can wait (the drop-in going) skips it and says so.
func TestRestartRefusedOnAnAddressWithoutBroadcast(t *testing.T) {
	withCNI := strings.Replace(twoNIC, "version: 1\n", "version: 1\ncni: [docker]\n", 1)
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	h.os.noBroadcast["eth-a"] = true
	before := h.files()
	_, err := h.apply(withCNI, Options{})
	if err == nil || !strings.Contains(err.Error(), "eth-a's address 192.168.1.10/24 has no broadcast, not 192.168.1.255") || fmt.Sprint(h.files()) != fmt.Sprint(before) {
		t.Fatalf("err %v", err)
	}
	h.os.version = 256 // the request queue was reworked
	ok(t)(h.apply(withCNI, Options{}))
	h.os.version = 252
	h.os.Transcript()
	ok(t)(h.apply(twoNIC, Options{}))
	if tr := h.os.Transcript(); strings.Contains(tr, "restart") || !strings.Contains(h.log.String(), "not restarting systemd-networkd now") {
		t.Errorf("the drop-in's removal restarted networkd:\n%s", tr)
	}
}

// TestVerifyFailureRollsBackAndChecksBefore: every link configured, but a reply takes another way (another
// program's rule ahead of symroute's sends eth-c's replies out of eth-a): the run is undone, and the routing it
// could touch is compared with the record from before it, foreign rule included.
func TestVerifyFailureRollsBackAndChecksBefore(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b", "eth-c")
	ok(t)(h.apply(twoNIC, Options{}))
	h.os.rules = append(h.os.rules, kernelRule(100, "10.1.0.1/32", 99, 3))
	h.os.routes = append(h.os.routes, routing.Route{Family: 2, Gateway: netip.MustParseAddr("192.168.1.1"), Table: 99, LinkIndex: h.os.links["eth-a"]})
	before := h.files()
	withC := twoNIC + "  - name: eth-c\n    addresses: [10.1.0.1/24]\n    gateway: 10.1.0.254\n"
	out, err := h.engine(Options{Timeout: 200 * time.Millisecond}).Apply(context.Background(), h.request(withC, record.OpApply))
	if err != nil || out.Verified || !out.RolledBack || len(out.Result.Findings) == 0 {
		t.Fatalf("err %v, verified %v, rolled back %v, findings %v\n%s", err, out.Verified, out.RolledBack, out.Result.Findings, h.log.String())
	}
	if !strings.Contains(h.log.String(), "verification failed") || strings.Contains(h.log.String(), "has not configured") {
		t.Fatalf("not the verification that failed:\n%s", h.log.String())
	}
	if !out.PreviousChecked || !out.PreviousBack {
		t.Fatalf("previous state: checked %v, back %v, diff %v", out.PreviousChecked, out.PreviousBack, out.PreviousDiff)
	}
	if fmt.Sprint(h.files()) != fmt.Sprint(before) {
		t.Error("files differ after the rollback")
	}
}

// TestUndoLeavesAValueSetMeanwhile: a key the try set and another program changed during the try's window keeps
// the other program's value when the try rolls back; a key still at the try's value goes back.
func TestUndoLeavesAValueSetMeanwhile(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	strict := strings.Replace(twoNIC, "    default_route: true\n", "    default_route: true\n    rp_filter: strict\n", 1)
	strict = strings.Replace(strict, "    gateway: 10.0.0.254\n", "    gateway: 10.0.0.254\n    rp_filter: strict\n", 1)
	req := h.request(strict, record.OpTry)
	req.Deadline = time.Now().Add(time.Minute)
	e := h.engine(Options{})
	ok(t)(e.Apply(context.Background(), req))
	a, b := sysctlKeyFor("eth-a"), sysctlKeyFor("eth-b")
	if h.os.sysctls[a] != "1" || h.os.sysctls[b] != "1" {
		t.Fatalf("the try did not set strict: %v", h.os.sysctls)
	}
	h.os.sysctls[b] = "0" // another program, during the window
	if _, err := e.RollbackPending(context.Background(), e.Record().Pending.ID, "not confirmed"); err != nil {
		t.Fatal(err)
	}
	if h.os.sysctls[a] != "2" || h.os.sysctls[b] != "0" {
		t.Fatalf("after the rollback: %v\n%s", h.os.sysctls, h.log.String())
	}
	if !strings.Contains(h.log.String(), b+" is 0, set by someone else meanwhile") {
		t.Errorf("no note on the value left:\n%s", h.log.String())
	}
}

// TestGuardProtectsReplies: dropping a drop-in interface leaves its address (another file gives it) but takes
// the source rule its replies follow; a connection on that address refuses the change unless forced.
func TestGuardProtectsReplies(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	os.MkdirAll(filepath.Join(h.dir, "etc/systemd/network"), 0o755)
	os.WriteFile(filepath.Join(h.dir, "etc/systemd/network/50-eth-b.network"), []byte("[Match]\nName=eth-b\n\n[Network]\nAddress=10.0.0.1/24\n"), 0o644)
	dropIn := strings.Replace(twoNIC, "  - name: eth-b\n", "  - name: eth-b\n    mode: drop-in\n", 1)
	ok(t)(h.apply(dropIn, Options{}))
	onlyA := strings.Replace(twoNIC, "  - name: eth-b\n    addresses: [10.0.0.1/24]\n    gateway: 10.0.0.254\n", "", 1)
	h.os.conns = []sockets.Conn{{Local: netip.MustParseAddrPort("10.0.0.1:22"), Remote: netip.MustParseAddrPort("10.9.0.5:50000")}}
	before := h.files()
	out, err := h.apply(onlyA, Options{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "the source rules of 10.0.0.1") {
		t.Fatalf("err %v", err)
	}
	if len(out.Lost.Addresses) != 0 || !slices.Contains(out.Lost.Rerouted, netip.MustParseAddr("10.0.0.1")) {
		t.Fatalf("lost %+v", out.Lost)
	}
	if fmt.Sprint(h.files()) != fmt.Sprint(before) {
		t.Fatal("a refused change wrote files")
	}
	ok(t)(h.apply(onlyA, Options{Force: true}))
}

// TestUndoLeavesAFileChangedSince: a file someone wrote after the dead run wrote it is theirs; the undo of that
// run restores every other file and leaves that one, saying so.
func TestUndoLeavesAFileChangedSince(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	before := h.files()
	changed := strings.Replace(twoNIC, "gateway: 10.0.0.254", "gateway: 10.0.0.253", 1)
	changed = strings.Replace(changed, "gateway: 192.168.1.1", "gateway: 192.168.1.2", 1)
	func() {
		defer func() { recover() }()
		h.os.onReload = func() { panic(errDie) }
		h.apply(changed, Options{})
	}()
	h.os.onReload = nil
	edited := filepath.Join(h.dir, "etc/systemd/network/10-symroute-eth-b.network")
	if err := os.WriteFile(edited, []byte("# someone's edit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := h.engine(Options{}) // Recover runs here
	after := h.files()
	for p, v := range before {
		switch {
		case strings.HasSuffix(p, "10-symroute-eth-b.network"):
			if !strings.Contains(after[p], fmt.Sprintf("%x", "# someone's edit\n")) {
				t.Errorf("the undo overwrote %s, which someone changed after the run", p)
			}
		case after[p] != v:
			t.Errorf("the undo did not restore %s", p)
		}
	}
	if e.Record().Pending != nil || !strings.Contains(h.log.String(), "left /etc/systemd/network/10-symroute-eth-b.network as it is") {
		t.Errorf("pending %v; log:\n%s", e.Record().Pending, h.log.String())
	}
}

// TestRollbackRemovesTheDirectoriesItMade: a run that rolls back on a fresh root leaves no directory it made for
// its files, and keeps one that holds a file of someone else's, written meanwhile.
func TestRollbackRemovesTheDirectoriesItMade(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	h.os.ignore = map[string]bool{"eth-a": true}
	h.os.onReload = func() {
		// Another program writes a file into a directory the run made, while the run goes on.
		os.WriteFile(filepath.Join(h.dir, "etc/iproute2/rt_tables.d/50-other.conf"), []byte("100 other\n"), 0o644)
	}
	if out, _ := h.apply(twoNIC, Options{}); !out.RolledBack {
		t.Fatal("want a rolled back run")
	}
	for _, dir := range []string{"etc/systemd/network", "etc/systemd", "etc/sysctl.d"} {
		if _, err := os.Stat(filepath.Join(h.dir, dir)); !os.IsNotExist(err) {
			t.Errorf("the rollback left /%s, which the run made: %v", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(h.dir, "etc/iproute2/rt_tables.d/50-other.conf")); err != nil {
		t.Errorf("the rollback took the directory of another program's file: %v", err)
	}
}
