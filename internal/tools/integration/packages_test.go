package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/symroute/symroute/internal/tools/nettest"
	"github.com/symroute/symroute/internal/tools/testenv"
)

var (
	packagesOnce sync.Once
	packagesErr  error
)

// buildPackages runs `make packages` once per test run and returns the .deb and .rpm it built.
func buildPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	packagesOnce.Do(func() {
		if out, err := exec.Command("make", "-C", "../../..", "packages").CombinedOutput(); err != nil {
			packagesErr = &buildError{err, string(out)}
		}
	})
	if packagesErr != nil {
		t.Fatal(packagesErr)
	}
	debs, _ := filepath.Glob("../../../dist/symroute_*_amd64.deb")
	rpms, _ := filepath.Glob("../../../dist/symroute-*.x86_64.rpm")
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
	"/usr/lib/systemd/system/symroute-recover.service",
	"/usr/lib/systemd/system/symroute-verify.service",
	"/usr/lib/systemd/system/symroute-verify.timer",
	"/usr/share/man/man8/symroute.8.gz",
	"/usr/share/bash-completion/completions/symroute",
	"/usr/share/zsh/vendor-completions/_symroute",
	"/usr/share/doc/symroute/examples/host.yaml",
	"/usr/share/doc/symroute/examples/ingress-node.yaml",
}

// TestDebPackage installs the .deb in a throwaway root (an overlay of this machine's root with a layer of the
// test's, in a mount namespace of its own), so this machine's packages and files never change. Without a
// description the postinst says so and changes nothing, and remove and purge stop at the files; with one, inside
// the field topology, the postinst's apply fixes the client's flow, and purge undoes it through symroute remove:
// the routing goes, each own .network file stays, released, so the host keeps its addresses, and the record and
// units go with the package.
func TestDebPackage(t *testing.T) {
	nettest.Require(t)
	testenv.Program(t, "dpkg", "dpkg")
	deb, _ := buildPackages(t)
	hostStatus, _ := os.ReadFile("/var/lib/dpkg/status")
	t.Cleanup(func() {
		if now, _ := os.ReadFile("/var/lib/dpkg/status"); string(now) != string(hostStatus) {
			t.Error("this machine's dpkg status changed")
		}
		if _, err := os.Stat("/usr/bin/symroute"); err == nil {
			t.Error("symroute is installed on this machine")
		}
	})

	// Without a description.
	root := nettest.NewThrowaway(t)
	root.Bind(filepath.Dir(deb))
	noDesc := []string{"SYMROUTE_CONFIG=/nonexistent/symroute-" + nettest.RunID(t) + ".yaml"}
	out, err := root.Run(nil, noDesc, "dpkg -i "+deb)
	if err != nil || !strings.Contains(out, "nothing applied") {
		t.Fatalf("dpkg -i without a description: %v\n%s", err, out)
	}
	for _, p := range installed {
		if _, err := os.Stat(filepath.Join(root.Upper, p)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	// The binary reports the package's version, as dpkg knows it.
	out, err = root.Run(nil, nil, "symroute --version && dpkg-query -W -f='${Version}\n${Status}' symroute")
	if lines := strings.Split(out, "\n"); err != nil || len(lines) != 3 || lines[0] != "symroute "+lines[1] || lines[2] != "install ok installed" {
		t.Errorf("installed: %v %q", err, out)
	}
	// The boot-time recovery is enabled with the package and disabled before it goes.
	recoverLink := "/etc/systemd/system/sysinit.target.wants/symroute-recover.service"
	if out, err := root.Run(nil, nil, "test -L "+recoverLink); err != nil {
		t.Errorf("symroute-recover.service is not enabled: %v %s", err, out)
	}
	if out, err := root.Run(nil, noDesc, "dpkg --remove symroute && ! test -e /usr/bin/symroute && ! test -e "+recoverLink+" && dpkg --purge symroute"); err != nil {
		t.Fatalf("remove and purge: %v\n%s", err, out)
	}

	// With a description: the host in the field topology, the scripts run in its namespace and on its bus.
	s := newSite(t)
	desc := s.describe("host.yaml", twoNICDescription("loose"))
	s.expectClient(false, "before the package is installed")
	root = nettest.NewThrowaway(t)
	root.Bind(filepath.Dir(deb), s.Root, filepath.Dir(strings.TrimPrefix(s.Bus.Address, "unix:path=")))
	env := []string{"SYMROUTE_CONFIG=" + desc, "SYMROUTE_ROOT=" + s.Root, "DBUS_SYSTEM_BUS_ADDRESS=" + s.Bus.Address, "SYMROUTE_OFFLINE=no"}
	out, err = root.Run(s.Host, env, "dpkg -i "+deb)
	if err != nil || !strings.Contains(out, "symroute: applied and verified.") {
		t.Fatalf("dpkg -i with a description: %v\n%s", err, out)
	}
	s.expectClient(true, "after the postinst applied the description")

	out, err = root.Run(s.Host, env, "dpkg --purge symroute")
	if err != nil || !strings.Contains(out, "kept eth-a's own .network file") || !strings.Contains(out, "symroute remove: done") {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	tree := s.tree("")
	for p, data := range tree {
		released := strings.HasPrefix(p, "etc/systemd/network/10-symroute-") && strings.Contains(string(data), "Released by \"symroute remove\"")
		if strings.Contains(p, "symroute") && p != "etc/symroute/host.yaml" && !released {
			t.Errorf("purge left %s", p)
		}
	}
	if _, ok := tree["etc/symroute/host.yaml"]; !ok {
		t.Error("purge removed the administrator's description")
	}
	if addrs := s.Host.IP("-o", "-4", "addr", "show", "dev", "eth-a"); !strings.Contains(addrs, hostA+"/24") {
		t.Errorf("purge took eth-a's address: %s", addrs)
	}
	if rules := s.Host.IP("rule"); strings.Contains(rules, "lookup 1000000") {
		t.Errorf("purge left symroute's rules:\n%s", rules)
	}
	s.expectClient(false, "after purge (symroute's rules are gone)")
}

// TestRpmPackage checks the .rpm's file list and scripts with Debian's rpm tool.
func TestRpmPackage(t *testing.T) {
	testenv.Program(t, "rpm", "rpm")
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
	for _, want := range []string{"postinstall scriptlet", "/usr/bin/symroute apply -c", "preuninstall scriptlet", "/usr/bin/symroute remove", "postuninstall scriptlet", "var/lib/symroute"} {
		if !strings.Contains(out, want) {
			t.Errorf("rpm scripts lack %q:\n%s", want, out)
		}
	}
	out, err = run(t, nil, "rpm", "-qp", "--requires", rpm)
	if err != nil || !strings.Contains(out, "systemd") {
		t.Errorf("rpm requires: %v\n%s", err, out)
	}
}
