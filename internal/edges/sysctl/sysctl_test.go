package sysctl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/core/plan"
	_ "github.com/symroute/symroute/internal/tools/golden"
)

func procSys(t *testing.T, values map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, v := range values {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestReadWrite: keys are read and written by their sysctl.d name, dotted or slashed; a key whose link is gone
// reads as absent and is skipped on write.
func TestReadWrite(t *testing.T) {
	dir := procSys(t, map[string]string{"net/ipv4/conf/eth0/rp_filter": "0", "net/ipv4/conf/bond0.100/rp_filter": "1"})
	a := Applier{ProcSys: dir}
	if v, ok, err := a.Read("net.ipv4.conf.eth0.rp_filter"); v != "0" || !ok || err != nil {
		t.Errorf("read: %q %v %v", v, ok, err)
	}
	if v, ok, _ := a.Read("net/ipv4/conf/bond0.100/rp_filter"); v != "1" || !ok {
		t.Errorf("read slashed: %q %v", v, ok)
	}
	if _, ok, err := a.Read("net.ipv4.conf.gone.rp_filter"); ok || err != nil {
		t.Errorf("absent key: %v %v", ok, err)
	}
	if err := a.Write("net.ipv4.conf.eth0.rp_filter", "2"); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := a.Read("net.ipv4.conf.eth0.rp_filter"); v != "2" {
		t.Errorf("after write: %q", v)
	}
	if err := a.Write("net.ipv4.conf.gone.rp_filter", "2"); err != nil {
		t.Errorf("write to a gone link: %v", err)
	}
}

// TestApplyWithoutSystemdSysctl: where systemd-sysctl is missing, the planned values are written directly, and
// the message says so and names the keys of links not there yet.
func TestApplyWithoutSystemdSysctl(t *testing.T) {
	dir := procSys(t, map[string]string{"net/ipv4/conf/eth0/rp_filter": "0"})
	a := Applier{ProcSys: dir, Binary: filepath.Join(dir, "no-such-binary")}
	how, err := a.Apply(context.Background(), []plan.Sysctl{{Key: "net.ipv4.conf.eth0.rp_filter", Value: "1"}, {Key: "net.ipv4.conf.eth9.rp_filter", Value: "1"}})
	if err != nil || !strings.Contains(how, "is missing") || !strings.Contains(how, "skipped net.ipv4.conf.eth9.rp_filter") {
		t.Fatalf("%q %v", how, err)
	}
	if v, _, _ := a.Read("net.ipv4.conf.eth0.rp_filter"); v != "1" {
		t.Errorf("eth0 = %q", v)
	}
}

// TestApplyRunsSystemdSysctlPerKey: with systemd-sysctl present, Apply runs it with one --prefix per key and the
// given files, and touches nothing itself. A stand-in binary records its arguments.
func TestApplyRunsSystemdSysctlPerKey(t *testing.T) {
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	bin := filepath.Join(dir, "systemd-sysctl")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho \"$@\" > "+args+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := Applier{ProcSys: dir, Binary: bin, Files: func() ([]string, error) { return []string{"/r/etc/sysctl.d/90-symroute.conf"}, nil }}
	if _, err := a.Apply(context.Background(), []plan.Sysctl{{Key: "net.ipv4.conf.eth0.rp_filter", Value: "1"}, {Key: "net/ipv4/conf/eth0.100/rp_filter", Value: "2"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(args)
	want := "--prefix=/net/ipv4/conf/eth0/rp_filter --prefix=/net/ipv4/conf/eth0.100/rp_filter /r/etc/sysctl.d/90-symroute.conf\n"
	if string(got) != want {
		t.Errorf("systemd-sysctl ran with %q, want %q", got, want)
	}
}

// standIn writes a shell script standing in for systemd-sysctl and returns its path.
func standIn(t *testing.T, script string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "systemd-sysctl")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

var ethA = []plan.Sysctl{{Key: "net.ipv4.conf.eth-a.rp_filter", Value: "1"}}

// TestApplyLeavesTheWritingToSystemdSysctl: where systemd-sysctl runs, Apply writes no key itself (the value is
// whatever the sysctl.d files say, overrides included), and passes on what systemd-sysctl said.
func TestApplyLeavesTheWritingToSystemdSysctl(t *testing.T) {
	dir := procSys(t, map[string]string{"net/ipv4/conf/eth-a/rp_filter": "0"})
	a := Applier{ProcSys: dir, Binary: standIn(t, "echo \"Couldn't write '2' to 'net/ipv4/conf/eth-a/rp_filter', ignoring: Permission denied\"\n")}
	how, err := a.Apply(context.Background(), ethA)
	if err != nil {
		t.Fatal(err)
	}
	if want := "systemd-sysctl applied net.ipv4.conf.eth-a.rp_filter (Couldn't write '2' to 'net/ipv4/conf/eth-a/rp_filter', ignoring: Permission denied)"; how != want {
		t.Errorf("how %q, want %q", how, want)
	}
	if v, _, _ := a.Read("net.ipv4.conf.eth-a.rp_filter"); v != "0" {
		t.Errorf("Apply wrote the key itself: %q", v)
	}
}

// TestApplyFailures: systemd-sysctl failing is an error carrying its command line and output; so is a list of
// files that cannot be read; and nothing to apply runs nothing.
func TestApplyFailures(t *testing.T) {
	dir := procSys(t, map[string]string{"net/ipv4/conf/eth-a/rp_filter": "0"})
	a := Applier{ProcSys: dir, Binary: standIn(t, "echo 'Failed to parse file' >&2\nexit 1\n")}
	_, err := a.Apply(context.Background(), ethA)
	if err == nil || !strings.Contains(err.Error(), a.Binary+" --prefix=/net/ipv4/conf/eth-a/rp_filter: exit status 1: Failed to parse file") {
		t.Errorf("systemd-sysctl failing: %v", err)
	}
	a.Files = func() ([]string, error) { return nil, errors.New("etc/sysctl.d: permission denied") }
	if _, err := a.Apply(context.Background(), ethA); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("unreadable files: %v", err)
	}
	ran := filepath.Join(t.TempDir(), "ran")
	a = Applier{ProcSys: dir, Binary: standIn(t, "touch "+ran+"\n")}
	if how, err := a.Apply(context.Background(), nil); how != "" || err != nil {
		t.Errorf("nothing to apply: %q %v", how, err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("systemd-sysctl ran with nothing to apply")
	}
}

// TestApplyEndsWithItsContext: a systemd-sysctl that hangs is killed when the context ends.
func TestApplyEndsWithItsContext(t *testing.T) {
	started := filepath.Join(t.TempDir(), "pid")
	a := Applier{ProcSys: t.TempDir(), Binary: standIn(t, "echo $$ > "+started+".tmp\nmv "+started+".tmp "+started+"\nexec sleep 600\n")}
	t.Cleanup(func() { // the stand-in is this test's own process: never left running, whatever Apply did
		if pid, err := os.ReadFile(started); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := a.Apply(ctx, ethA); done <- err }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stand-in never started")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "signal: killed") {
			t.Errorf("a hanging systemd-sysctl: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Apply did not end with its context")
	}
}

// TestReadWriteErrorsOtherThanAbsence: a key that exists but cannot be read or written (here a directory where
// the file is) is an error, never taken for a link that is gone; the direct writes report it too.
func TestReadWriteErrorsOtherThanAbsence(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "net/ipv4/conf/eth-a/rp_filter"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := Applier{ProcSys: dir, Binary: filepath.Join(dir, "no-such-binary")}
	if _, exists, err := a.Read("net.ipv4.conf.eth-a.rp_filter"); err == nil || exists {
		t.Errorf("read: exists %v, err %v", exists, err)
	}
	if err := a.Write("net.ipv4.conf.eth-a.rp_filter", "1"); err == nil {
		t.Error("write into a directory succeeded")
	}
	if _, err := a.Apply(context.Background(), ethA); err == nil || !strings.Contains(err.Error(), "is missing, and writing "+filepath.Join(dir, "net/ipv4/conf/eth-a/rp_filter")+" failed") {
		t.Errorf("direct write: %v", err)
	}
}
