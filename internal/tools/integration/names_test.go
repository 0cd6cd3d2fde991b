package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/edges/kernel"
	"github.com/symroute/symroute/internal/tools/nettest"
)

// unusualNames are names the kernel, networkd and systemd-sysctl all take, and symroute accepts, though each holds
// a character some file format reads specially. Each has a decoy: the link a mis-parse (a glob, a list, a
// dropped character, a key split at a dot) would configure instead.
var unusualNames = []struct{ name, decoy string }{
	{"e-1.2", "e-1"},
	{".lead", "lead"},
	{"#h", "h"},
	{"a;b", "ab"},
	{"-dash", "dash"},
	{"m!d", "md"},
	{"t~i^l", "til"},
	{"c{u}r", "cur"},
	{"p|i<p>", "pip"},
	{"a&b$c", "abc"},
	{"x,y", "xy"},
	{"(p)`q", "pq"},
	{"u_n+d@r", "undr"},
	{"e1234567890abcd", "e1234567890abc"},
	{"null", "nul"},
	{"0xg", "0x"},
	{"1e3", "1e"},
}

// TestUnusualNamesTouchOnlyTheirLink renders a description of every unusual name with the real symroute binary,
// loads the files into the real networkd and applies the sysctl file with the real systemd-sysctl, and requires
// that each file configured exactly its own link: the planned rules and routes, its address, its rp_filter, and
// nothing at all on any decoy.
func TestUnusualNamesTouchOnlyTheirLink(t *testing.T) {
	nettest.Require(t)
	var desc strings.Builder
	desc.WriteString("version: 1\ninterfaces:\n")
	for i, n := range unusualNames {
		fmt.Fprintf(&desc, "  - name: %q\n    addresses: [10.77.%d.1/24]\n    gateway: 10.77.%d.254\n    rp_filter: strict\n", n.name, i, i)
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "host.yaml")
	if err := os.WriteFile(input, []byte(desc.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	out, err := runBinary(t, "generate", "-c", input, "--root", root, "--strict")
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, out)
	}
	p := loadPlan(t, input)

	id := nettest.RunID(t)
	ns := nettest.NewNetns(t, id, "host")
	var names []string
	for i, n := range unusualNames {
		ns.IP("link", "add", "name", n.name, "type", "veth", "peer", "name", fmt.Sprintf("np%d", i))
		ns.IP("link", "add", "name", n.decoy, "type", "veth", "peer", "name", fmt.Sprintf("dp%d", i))
		for _, l := range []string{n.name, n.decoy, fmt.Sprintf("np%d", i), fmt.Sprintf("dp%d", i)} {
			ns.IP("link", "set", "dev", l, "up")
		}
		names = append(names, n.name)
	}
	bus := nettest.StartBus(t)
	nd := nettest.StartNetworkd(t, ns, bus, root)
	nd.WaitConfigured(t, ns, 30*time.Second, names...)
	if w := nd.ConfigWarnings(); len(w) > 0 {
		t.Fatalf("networkd complained:\n%s", strings.Join(w, "\n"))
	}
	reader, err := kernel.NewReader(ns.Handle())
	if err != nil {
		t.Fatal(err)
	}
	assertKernelMatchesPlan(t, reader, p)

	for i, n := range unusualNames {
		want := "/etc/systemd/network/10-symroute-" + n.name + ".network"
		if state, file := nd.LinkState(t, ns, n.name); state != "configured" || file != want {
			t.Errorf("%s: networkd says %s with %q, want configured with %s", n.name, state, file, want)
		}
		if addrs := ns.IP("-o", "-4", "addr", "show", "dev", n.name); !strings.Contains(addrs, fmt.Sprintf("10.77.%d.1/24", i)) {
			t.Errorf("%s lacks its address: %s", n.name, addrs)
		}
		if state, file := nd.LinkState(t, ns, n.decoy); state != "unmanaged" || file != "" {
			t.Errorf("decoy %s: networkd says %s with %q, want unmanaged", n.decoy, state, file)
		}
		if addrs := ns.IP("-o", "-4", "addr", "show", "dev", n.decoy); strings.Contains(addrs, "10.77.") {
			t.Errorf("decoy %s got an address: %s", n.decoy, addrs)
		}
	}

	// systemd-sysctl reads the generated file as the next boot would; net.* keys are the namespace's own.
	const reset = `find /proc/sys/net/ipv4/conf -mindepth 2 -maxdepth 2 -name rp_filter -exec sh -c 'echo 0 > "$1"' _ {} \;`
	ns.Exec("sh", "-c", reset)
	ns.Exec("/lib/systemd/systemd-sysctl", filepath.Join(root, "etc/sysctl.d/90-symroute.conf"))
	values := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(ns.Exec("sh", "-c", `find /proc/sys/net/ipv4/conf -mindepth 2 -maxdepth 2 -name rp_filter -exec grep -H . {} +`)), "\n") {
		path, value, _ := strings.Cut(line, ":")
		values[filepath.Base(filepath.Dir(path))] = value
	}
	for _, n := range unusualNames {
		if values[n.name] != "1" {
			t.Errorf("rp_filter of %s is %q, want 1", n.name, values[n.name])
		}
		if values[n.decoy] != "0" {
			t.Errorf("rp_filter of decoy %s is %q, want 0", n.decoy, values[n.decoy])
		}
	}
	if values["all"] != "0" || values["default"] != "0" {
		t.Errorf("all/default rp_filter changed: %s/%s", values["all"], values["default"])
	}
}

// runBinary runs the symroute binary on this host (for commands that touch only their --root).
func runBinary(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(symrouteBinary(t), args...).CombinedOutput()
	return string(out), err
}
