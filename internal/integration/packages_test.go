package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/symroute/symroute/internal/golden"
	"github.com/symroute/symroute/internal/nettest"
)

var (
	packagesOnce sync.Once
	packagesErr  error
)

// buildPackages runs `make packages` once per test run and returns the .deb and .rpm it built.
func buildPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	packagesOnce.Do(func() {
		if out, err := exec.Command("make", "-C", "../..", "packages").CombinedOutput(); err != nil {
			packagesErr = &buildError{err, string(out)}
		}
	})
	if packagesErr != nil {
		t.Fatal(packagesErr)
	}
	debs, _ := filepath.Glob("../../dist/symroute_*_amd64.deb")
	rpms, _ := filepath.Glob("../../dist/symroute-*.x86_64.rpm")
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("dist/ holds %v and %v", debs, rpms)
	}
	deb, _ = filepath.Abs(debs[0])
	rpm, _ = filepath.Abs(rpms[0])
	return deb, rpm
}

func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var installed = []string{
	"/usr/bin/symroute",
	"/usr/lib/systemd/system/symroute.service",
	"/usr/lib/systemd/system/symroute-verify.service",
	"/usr/lib/systemd/system/symroute-verify.timer",
	"/usr/share/man/man8/symroute.8.gz",
	"/usr/share/bash-completion/completions/symroute",
	"/usr/share/zsh/vendor-completions/_symroute",
	"/usr/share/doc/symroute/examples/host.yaml",
}

// TestDebPackage installs the .deb on this machine with dpkg: without a description the postinst says so and
// changes nothing; with one, inside the field topology, the postinst's apply fixes the client's flow, and purge
// removes what symroute generated (leaving the description) and reloads networkd. It is not parallel: it owns
// dpkg on this machine, and removes the package whatever happens.
func TestDebPackage(t *testing.T) {
	nettest.Require(t)
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg is not on this machine")
	}
	deb, _ := buildPackages(t)
	t.Cleanup(func() { exec.Command("dpkg", "--purge", "symroute").Run() })

	// Without a description.
	noDesc := []string{"SYMROUTE_CONFIG=/nonexistent/symroute-" + nettest.RunID(t) + ".yaml"}
	out, err := run(t, noDesc, "dpkg", "-i", deb)
	if err != nil || !strings.Contains(out, "nothing applied") {
		t.Fatalf("dpkg -i without a description: %v\n%s", err, out)
	}
	for _, p := range installed {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	if out, err := run(t, nil, "/usr/bin/symroute", "--version"); err != nil || !strings.HasPrefix(out, "symroute ") {
		t.Errorf("installed binary: %v %s", err, out)
	}
	if out, err := run(t, nil, "dpkg-query", "-W", "-f=${Status}", "symroute"); err != nil || out != "install ok installed" {
		t.Errorf("package status %q: %v", out, err)
	}
	if out, err := run(t, noDesc, "dpkg", "--remove", "symroute"); err != nil {
		t.Fatalf("dpkg --remove: %v\n%s", err, out)
	}
	if _, err := os.Stat("/usr/bin/symroute"); err == nil {
		t.Error("/usr/bin/symroute survived dpkg --remove")
	}
	if out, err := run(t, noDesc, "dpkg", "--purge", "symroute"); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}

	// With a description: the host in the field topology, the postinst run in its namespace and on its bus.
	s := newSite(t)
	desc := s.describe("host.yaml", twoNICDescription("loose"))
	s.expectClient(false, "before the package is installed")
	env := []string{"SYMROUTE_CONFIG=" + desc, "SYMROUTE_ROOT=" + s.Root, "DBUS_SYSTEM_BUS_ADDRESS=" + s.Bus.Address}
	out, err = run(t, env, "ip", "netns", "exec", s.Host.Name, "dpkg", "-i", deb)
	if err != nil || !strings.Contains(out, "symroute: applied and verified.") {
		t.Fatalf("dpkg -i with a description: %v\n%s", err, out)
	}
	s.expectClient(true, "after the postinst applied the description")

	out, err = run(t, env, "ip", "netns", "exec", s.Host.Name, "dpkg", "--purge", "symroute")
	if err != nil || !strings.Contains(out, "removed "+s.Root+"/etc/systemd/network/10-symroute-eth-a.network") || !strings.Contains(out, "reloaded systemd-networkd") {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	tree, _ := golden.ReadTree(s.Root)
	for p := range tree {
		if strings.Contains(p, "symroute") && p != "etc/symroute/host.yaml" {
			t.Errorf("purge left %s", p)
		}
	}
	if _, ok := tree["etc/symroute/host.yaml"]; !ok {
		t.Error("purge removed the administrator's description")
	}
	s.expectClient(false, "after purge (symroute's rules are gone)")
}

// TestRpmPackage checks the .rpm's file list and scripts with Debian's rpm tool.
func TestRpmPackage(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm is not on this machine (make deps installs it as root)")
	}
	_, rpm := buildPackages(t)
	out, err := run(t, nil, "rpm", "-qpl", rpm)
	if err != nil {
		t.Fatalf("rpm -qpl: %v\n%s", err, out)
	}
	for _, p := range append(installed, "/etc/symroute") {
		if !strings.Contains(out, p+"\n") {
			t.Errorf("rpm lacks %s:\n%s", p, out)
		}
	}
	out, err = run(t, nil, "rpm", "-qp", "--scripts", rpm)
	if err != nil {
		t.Fatalf("rpm --scripts: %v\n%s", err, out)
	}
	for _, want := range []string{"postinstall scriptlet", "/usr/bin/symroute apply -c", "postuninstall scriptlet", "^# Generated by symroute"} {
		if !strings.Contains(out, want) {
			t.Errorf("rpm scripts lack %q:\n%s", want, out)
		}
	}
	out, err = run(t, nil, "rpm", "-qp", "--requires", rpm)
	if err != nil || !strings.Contains(out, "systemd") {
		t.Errorf("rpm requires: %v\n%s", err, out)
	}
}
