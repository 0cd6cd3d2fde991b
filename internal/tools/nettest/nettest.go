// Package nettest runs the real systemd-networkd, with a D-Bus system bus of its own, inside a network namespace
// made for one test, so tests meet networkd exactly as a user's host does. Everything it starts is stopped by
// pid and every namespace it makes is deleted when the test ends.
//
// How networkd is made to work in a namespace: a private mount
// namespace with a read-only sysfs (with a writable /sys networkd waits for udev forever), a tmpfs over
// /run/systemd, and the test's own directories bind-mounted over networkd's configuration directories.
package nettest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/symroute/symroute/internal/tools/testenv"
)

// T is what the harness needs from its caller: testing.TB in tests, a small adapter in the demo.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
	Fatal(args ...any)
	Cleanup(func())
	Failed() bool
}

// NetworkdBinary is Debian's path to systemd-networkd.
const NetworkdBinary = "/lib/systemd/systemd-networkd"

// Require skips the test when the machine cannot run networkd in a namespace, saying what is missing, or fails
// it where every test must run (testenv.RequireVar). .ci/install-deps installs every program it needs.
func Require(t T) {
	t.Helper()
	testenv.Root(t, "to create network namespaces and run systemd-networkd")
	for _, p := range [][2]string{{NetworkdBinary, "systemd"}, {"dbus-daemon", "dbus"}, {"ip", "iproute2"}, {"unshare", "util-linux"}} {
		testenv.Program(t, p[0], p[1])
	}
}

// RunID returns a short random suffix that keeps parallel runs' names apart.
func RunID(t T) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Netns is a network namespace owned by one test.
type Netns struct {
	Name string
	t    T
}

// NewNetns creates a namespace named symroute-<id>-<role> and deletes it when the test ends.
func NewNetns(t T, id, role string) *Netns {
	t.Helper()
	name := "symroute-" + id + "-" + role
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	n := &Netns{Name: name, t: t}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	n.IP("link", "set", "lo", "up")
	return n
}

// IP runs `ip -n <ns> args...` and fails the test on error.
func (n *Netns) IP(args ...string) string {
	n.t.Helper()
	return n.Exec(append([]string{"ip"}, args...)...)
}

// Exec runs a command inside the namespace and fails the test on error.
func (n *Netns) Exec(args ...string) string {
	n.t.Helper()
	out, err := n.Try(args...)
	if err != nil {
		n.t.Fatalf("in %s: %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs a command inside the namespace and returns its combined output and error.
func (n *Netns) Try(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Handle returns a netlink handle into the namespace, closed when the test ends.
func (n *Netns) Handle() *netlink.Handle {
	n.t.Helper()
	ns, err := netns.GetFromName(n.Name)
	if err != nil {
		n.t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(h.Close)
	return h
}

// Bus is a private dbus-daemon standing in for the system bus.
type Bus struct {
	// Address is the bus address to give clients (DBUS_SYSTEM_BUS_ADDRESS).
	Address string
}

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
</busconfig>
`

// StartBus starts a dbus-daemon listening on a socket in a temporary directory, stopped when the test ends.
func StartBus(t T) *Bus {
	t.Helper()
	// Not t.TempDir: that is 0700, and networkd, which drops to the systemd-network user, must reach the socket.
	dir, err := os.MkdirTemp("", "symroute-bus-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "bus.sock")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, sock)), 0o644); err != nil {
		t.Fatal(err)
	}
	// dbus-daemon prints its address once it listens: reading that line is the wait, with no polling.
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile", "--print-address=1")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = w, logs
	start(t, cmd, "dbus-daemon")
	w.Close()
	listening := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(r).ReadString('\n')
		listening <- err
	}()
	select {
	case err := <-listening:
		if err != nil {
			t.Fatalf("dbus-daemon did not start: %v: %s", err, logs.String())
		}
	case <-time.After(10 * time.Second): // bounds a hang only
		t.Fatalf("dbus-daemon printed no address within 10 s: %s", logs.String())
	}
	return &Bus{Address: "unix:path=" + sock}
}

// process is a command a test started; it is stopped by its own pid at the latest when the test ends.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// start runs cmd and stops it when the test ends.
func start(t T, cmd *exec.Cmd, what string) *process {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

// stop interrupts the process, kills it if it has not exited within 5 s, and waits for it.
func (p *process) stop() {
	p.once.Do(func() {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
}

func waitFor(t T, limit time.Duration, ok func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Networkd is a systemd-networkd running in a test's namespace.
type Networkd struct {
	Bus    *Bus
	log    *syncBuffer
	proc   *process
	exited <-chan struct{}
}

// networkdDirs are bind-mounted from the test's root over the real ones, so networkd reads only the test's files.
var networkdDirs = []string{"etc/systemd/network", "etc/systemd/networkd.conf.d", "run/systemd/network", "usr/lib/systemd/network"}

// StartNetworkd runs networkd in ns with root's etc/systemd/network, etc/systemd/networkd.conf.d,
// run/systemd/network and usr/lib/systemd/network as its configuration, on bus. It is stopped when the test
// ends. root may be changed and networkd reloaded while it runs: the directories are bind mounts.
func StartNetworkd(t T, ns *Netns, bus *Bus, root string) *Networkd {
	t.Helper()
	var script strings.Builder
	script.WriteString("set -e\numount -l /sys\nmount -t sysfs -o ro sysfs /sys\n")
	script.WriteString("mount -t tmpfs tmpfs /run/systemd\nmkdir -p /run/systemd/netif /run/systemd/network\nchown systemd-network:systemd-network /run/systemd/netif\n")
	// A tmpfs over /etc/systemd hides the host's networkd.conf and drop-ins.
	script.WriteString("mount -t tmpfs tmpfs /etc/systemd\n")
	for _, d := range networkdDirs {
		src := filepath.Join(root, d)
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&script, "mkdir -p /%s\nmount --bind %q /%s\n", d, src, d)
	}
	fmt.Fprintf(&script, "exec %s\n", NetworkdBinary)

	cmd := exec.Command("ip", "netns", "exec", ns.Name, "unshare", "--mount", "--propagation", "private", "sh", "-c", script.String())
	level := "info"
	if l := os.Getenv("SYMROUTE_TEST_NETWORKD_LOG_LEVEL"); l != "" {
		level = l // debug shows why a link waits
	}
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address, "SYSTEMD_LOG_LEVEL="+level, "SYSTEMD_LOG_TARGET=console")
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	proc := start(t, cmd, "systemd-networkd")
	n := &Networkd{Bus: bus, log: log, proc: proc, exited: proc.done}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("systemd-networkd log:\n%s", log.String())
		}
	})
	return n
}

// Stop stops networkd, as `systemctl stop systemd-networkd` would.
func (n *Networkd) Stop() { n.proc.stop() }

// Log returns what networkd has logged so far.
func (n *Networkd) Log() string { return n.log.String() }

// ConfigWarnings returns the log lines in which networkd rejected or ignored part of its configuration.
func (n *Networkd) ConfigWarnings() []string {
	var out []string
	for _, line := range strings.Split(n.Log(), "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "unknown key") || strings.Contains(l, "invalid") || strings.Contains(l, "ignoring") || strings.Contains(l, "failed") {
			out = append(out, line)
		}
	}
	return out
}

// WaitConfigured waits until networkd reports every link in names configured, and fails the test if one
// fails or the limit passes. It uses networkd's own D-Bus API, as symroute apply does.
func (n *Networkd) WaitConfigured(t T, ns *Netns, limit time.Duration, names ...string) {
	t.Helper()
	h := ns.Handle()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	states := map[string]string{}
	waitFor(t, limit, func() bool {
		select {
		case <-n.exited:
			t.Fatalf("systemd-networkd exited; log:\n%s", n.Log())
		default:
		}
		client, err := dialNetworkd(ctx, n.Bus.Address)
		if err != nil {
			states["bus"] = err.Error()
			return false
		}
		defer client.Close()
		all := true
		for _, name := range names {
			link, err := h.LinkByName(name)
			if err != nil {
				states[name] = err.Error()
				all = false
				continue
			}
			state, err := client.state(ctx, link.Attrs().Index)
			if err != nil {
				states[name] = err.Error()
				all = false
				continue
			}
			states[name] = state
			if state == "failed" {
				t.Fatalf("networkd failed to configure %s; log:\n%s", name, n.Log())
			}
			all = all && state == "configured"
		}
		return all
	}, func() string { return fmt.Sprintf("links configured: %v", states) })
}

// WaitReady waits until networkd answers on its bus, as it does once it has enumerated the links.
func (n *Networkd) WaitReady(t T) {
	t.Helper()
	var last error
	waitFor(t, 20*time.Second, func() bool {
		select {
		case <-n.exited:
			t.Fatalf("systemd-networkd exited; log:\n%s", n.Log())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		client, err := dialNetworkd(ctx, n.Bus.Address)
		if err != nil {
			last = err
			return false
		}
		defer client.Close()
		_, last = client.state(ctx, 1) // lo
		return last == nil
	}, func() string { return fmt.Sprintf("networkd on the bus: %v", last) })
}

// LinkState returns networkd's administrative state of the link called name ("unmanaged" for a link no file
// matched), and the .network file it applied.
func (n *Networkd) LinkState(t T, ns *Netns, name string) (state, file string) {
	t.Helper()
	link, err := ns.Handle().LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := dialNetworkd(ctx, n.Bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	l, err := client.DescribeLink(ctx, link.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	return l.AdministrativeState, l.NetworkFile
}

// Pid is networkd's process id (the harness execs it in place), for a test that stops it with SIGSTOP.
func (n *Networkd) Pid() int { return n.proc.cmd.Process.Pid }
