package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/tools/nettest"
)

// TestDiscoverRoundTrips: a host set up by hand (two NICs with DHCP-style default routes, IPv6 with a
// link-local router, a Calico pod link, Tailscale's rule, netplan configuring one NIC) is discovered; the
// description passes check, generates, and plans exactly what the namespace has.
func TestDiscoverRoundTrips(t *testing.T) {
	t.Parallel()
	nettest.Require(t)
	ns := nettest.NewNetns(t, nettest.RunID(t), "discover")
	for _, l := range []struct{ name, peer string }{{"eth-a", "pa"}, {"eth-b", "pb"}, {"cali1", "pc"}} {
		ns.IP("link", "add", l.name, "type", "veth", "peer", "name", l.peer)
		ns.IP("link", "set", l.name, "up")
		ns.IP("link", "set", l.peer, "up")
	}
	ns.IP("addr", "add", "192.168.1.10/24", "dev", "eth-a")
	ns.IP("addr", "add", "10.0.0.1/24", "dev", "eth-b")
	ns.IP("addr", "add", "10.0.0.2/24", "dev", "eth-b")
	ns.IP("addr", "add", "2001:db8:2::1/64", "dev", "eth-b", "nodad")
	ns.IP("route", "add", "default", "via", "192.168.1.1", "dev", "eth-a", "metric", "100")
	ns.IP("route", "add", "default", "via", "10.0.0.254", "dev", "eth-b", "metric", "200")
	ns.IP("-6", "route", "add", "default", "via", "fe80::1", "dev", "eth-b")
	ns.IP("route", "add", "10.244.1.5/32", "dev", "cali1", "scope", "link")
	ns.IP("rule", "add", "pref", "5270", "lookup", "52")

	root := t.TempDir()
	netplan := filepath.Join(root, "run/systemd/network/10-netplan-eth-b.network")
	if err := os.MkdirAll(filepath.Dir(netplan), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(netplan, []byte("[Match]\nName=eth-b\n\n[Network]\nDHCP=ipv4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "discovered.yaml")
	bin := symrouteBinary(t)
	if got, err := ns.Try("sh", "-c", `"$0" discover --root "$1" > "$2"`, bin, root, out); err != nil {
		t.Fatalf("discover: %v\n%s", err, got)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}

	if got, err := ns.Try(bin, "check", "-c", out, "--root", root); err != nil {
		t.Fatalf("check rejects the discovered description: %v\n%s\n%s", err, got, data)
	}
	if got, err := ns.Try(bin, "generate", "-c", out, "--root", root); err != nil || !strings.Contains(got, "10-netplan-eth-b.network.d/90-symroute.conf") {
		t.Fatalf("generate: %v\n%s", err, got)
	}

	h, rep := description.Parse(data)
	p, planRep := plan.Build(h)
	rep.Merge(planRep)
	if rep.HasErrors(false) {
		t.Fatalf("%v\n%s", rep.Entries, data)
	}
	var components []string
	for _, c := range h.Components {
		components = append(components, c.Name)
	}
	var ifaces []string
	for _, ifc := range p.Interfaces {
		ifaces = append(ifaces, describeIface(ifc))
	}
	want := []string{
		"eth-a own [192.168.1.10/24] gw 192.168.1.1 gw6 invalid IP default true",
		"eth-b drop-in [10.0.0.1/24 10.0.0.2/24 2001:db8:2::1/64] gw 10.0.0.254 gw6 fe80::1 default false",
	}
	if strings.Join(ifaces, "\n") != strings.Join(want, "\n") || strings.Join(components, ",") != "calico,tailscale" {
		t.Errorf("discovered:\n%s\ncomponents %v\nwant:\n%s\nfrom:\n%s", strings.Join(ifaces, "\n"), components, strings.Join(want, "\n"), data)
	}
}

func describeIface(ifc plan.Interface) string {
	var addrs []string
	for _, a := range ifc.Addresses {
		addrs = append(addrs, a.String())
	}
	return strings.Join([]string{ifc.Name, string(ifc.Mode), "[" + strings.Join(addrs, " ") + "]", "gw", ifc.Gateway.String(), "gw6", ifc.Gateway6.String(), "default", boolString(ifc.DefaultRoute)}, " ")
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
