package sysctl

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
