package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/nettest"
)

// site is the topology in which the field failure happens (shared/notes/networkd-in-netns.md):
//
//	client 10.0.0.50 --- lan bridge --- host eth-b 10.0.0.1        (the host's second NIC shares the client's LAN)
//	                        |
//	                 gw 10.0.0.254 (stateful: conntrack INVALID dropped, tcp_loose=0)
//	                 gw 192.168.1.1 --- host eth-a 192.168.1.10    (the host's first NIC, default route)
//
// The client reaches 192.168.1.10 through the gateway. Without policy routing the host answers straight out of
// eth-b; the gateway never sees the SYN-ACK and drops the rest of the flow as INVALID.
type site struct {
	t                     *testing.T
	host, gw, lan, client *nettest.Netns
	root                  string
	bus                   *nettest.Bus
	networkd              *nettest.Networkd
	bin                   string
}

const (
	hostA    = "192.168.1.10"
	hostB    = "10.0.0.1"
	clientIP = "10.0.0.50"
	echoPort = "8080"
)

// newSite builds the topology with the host configured by hand (addresses and a default route, as a host is
// before symroute), networkd running with no files, and an echo server on the host.
func newSite(t *testing.T) *site {
	t.Helper()
	return buildSite(t, "", true)
}

// buildSite builds the topology. With root set, networkd starts from the files already there, as after a
// reboot; with handConfigured, the host gets its addresses and default route by hand first.
func buildSite(t *testing.T, root string, handConfigured bool) *site {
	t.Helper()
	nettest.Require(t)
	id := nettest.RunID(t)
	s := &site{t: t, bin: symrouteBinary(t)}
	s.host = nettest.NewNetns(t, id, "host")
	s.gw = nettest.NewNetns(t, id, "gw")
	s.lan = nettest.NewNetns(t, id, "lan")
	s.client = nettest.NewNetns(t, id, "client")

	s.lan.IP("link", "add", "br0", "type", "bridge")
	s.lan.IP("link", "set", "br0", "up")
	link := func(a *nettest.Netns, aName string, b *nettest.Netns, bName string) {
		a.IP("link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
		a.IP("link", "set", aName, "up")
		b.IP("link", "set", bName, "up")
	}
	link(s.host, "eth-a", s.gw, "gw-a")
	link(s.host, "eth-b", s.lan, "lan-h")
	link(s.gw, "gw-lan", s.lan, "lan-g")
	link(s.client, "cl", s.lan, "lan-c")
	for _, port := range []string{"lan-h", "lan-g", "lan-c"} {
		s.lan.IP("link", "set", port, "master", "br0")
	}

	s.gw.IP("addr", "add", "192.168.1.1/24", "dev", "gw-a")
	s.gw.IP("addr", "add", "10.0.0.254/24", "dev", "gw-lan")
	s.gw.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	s.gw.Exec("nft", "add table inet gw; add chain inet gw forward { type filter hook forward priority 0; policy accept; }; add rule inet gw forward ct state invalid drop")
	s.gw.Exec("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0")

	s.client.IP("addr", "add", clientIP+"/24", "dev", "cl")
	s.client.IP("route", "add", "default", "via", "10.0.0.254")

	if handConfigured {
		s.host.IP("addr", "add", hostA+"/24", "dev", "eth-a")
		s.host.IP("addr", "add", hostB+"/24", "dev", "eth-b")
		s.host.IP("route", "add", "default", "via", "192.168.1.1")
	}
	s.host.Serve(t, "0.0.0.0:"+echoPort)

	s.root = root
	if s.root == "" {
		s.root = t.TempDir()
		if err := os.Chmod(s.root, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.bus = nettest.StartBus(t)
	s.networkd = nettest.StartNetworkd(t, s.host, s.bus, s.root)
	s.networkd.WaitReady(t)
	return s
}

// restartNetworkd stops networkd and starts it again on the same files, as systemctl restart would.
func (s *site) restartNetworkd() {
	s.t.Helper()
	s.networkd.Stop()
	s.networkd = nettest.StartNetworkd(s.t, s.host, s.bus, s.root)
	s.networkd.WaitReady(s.t)
}

// addPod joins a Calico-style pod to the host: a veth whose host side (cali1) answers ARP for the pod's gateway
// 169.254.1.1 by proxy, the pod a /32 with a default route through that gateway, and a host route to the pod in
// main, as Felix writes it.
func (s *site) addPod() *nettest.Netns {
	s.t.Helper()
	pod := nettest.NewNetns(s.t, nettest.RunID(s.t), "pod")
	s.host.IP("link", "add", "cali1", "type", "veth", "peer", "name", "eth0", "netns", pod.Name)
	s.host.IP("link", "set", "cali1", "up")
	// Proxy ARP answers only on a forwarding device; a Kubernetes node forwards.
	s.host.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.cali1.proxy_arp=1")
	s.host.IP("route", "add", podIP+"/32", "dev", "cali1", "scope", "link")
	pod.IP("link", "set", "eth0", "up")
	pod.IP("addr", "add", podIP+"/32", "dev", "eth0")
	pod.IP("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
	pod.IP("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
	return pod
}

const podIP = "10.244.1.5"

// describe writes a description into the site's root and returns its path.
func (s *site) describe(name, body string) string {
	s.t.Helper()
	p := filepath.Join(s.root, "etc/symroute", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// symroute runs the real binary inside the host namespace against the site's networkd and root.
func (s *site) symroute(args ...string) (int, string) {
	s.t.Helper()
	args = append(args, "--root", s.root)
	cmd := exec.Command("ip", append([]string{"netns", "exec", s.host.Name, s.bin}, args...)...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+s.bus.Address)
	out, err := cmd.CombinedOutput()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		s.t.Fatalf("run symroute %s: %v", strings.Join(args, " "), err)
	}
	return code, string(out)
}

// mustSymroute runs symroute and fails the test unless it exits with want.
func (s *site) mustSymroute(want int, args ...string) string {
	s.t.Helper()
	code, out := s.symroute(args...)
	if code != want {
		s.t.Fatalf("symroute %s exited %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// clientReachesA is the user-visible question: can the LAN client use the host's first-NIC address?
func (s *site) clientReachesA() error { return s.client.Echo(hostA+":"+echoPort, "") }

func (s *site) expectClient(works bool, when string) {
	s.t.Helper()
	err := s.clientReachesA()
	switch {
	case works && err != nil:
		s.t.Fatalf("%s: the client cannot reach %s through the gateway: %v", when, hostA, err)
	case !works && err == nil:
		s.t.Fatalf("%s: the client reached %s, but the asymmetric path should have broken the flow; the scenario proves nothing", when, hostA)
	}
}

const twoNIC = `version: 1
interfaces:
  - name: eth-a
    addresses: [192.168.1.10/24]
    gateway: 192.168.1.1
    default_route: true
    rp_filter: %[1]s
  - name: eth-b
    addresses: [10.0.0.1/24]
    gateway: 10.0.0.254
    rp_filter: %[1]s
`

func twoNICDescription(rpFilter string) string { return fmt.Sprintf(twoNIC, rpFilter) }
