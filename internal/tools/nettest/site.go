package nettest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Site is the topology in which the field failure happens:
//
//	client 10.0.0.50 --- lan bridge --- host eth-b 10.0.0.1        (the host's second NIC shares the client's LAN)
//	                        |
//	                 gw 10.0.0.254 (stateful: conntrack INVALID dropped, tcp_loose=0)
//	                 gw 192.168.1.1 --- host eth-a 192.168.1.10    (the host's first NIC, default route)
//
// The client reaches 192.168.1.10 through the gateway. Without policy routing the host answers straight out of
// eth-b; the gateway never sees the SYN-ACK and drops the rest of the flow as INVALID.
type Site struct {
	Host, GW, LAN, Client *Netns
	// Root is the host's file tree: networkd reads its etc/systemd/network and friends.
	Root     string
	Bus      *Bus
	Networkd *Networkd
	// Manager answers symroute's restarts of systemd-networkd by restarting the site's networkd.
	Manager *Manager
	t       T
}

// Addresses and port of the site.
const (
	HostA    = "192.168.1.10"
	HostB    = "10.0.0.1"
	ClientIP = "10.0.0.50"
	EchoPort = "8080"
	PodIP    = "10.244.1.5"
)

// NewSite builds the topology under the names symroute-<id>-<role>. With handConfigured the host gets its
// addresses and default route by hand, as a host is before symroute; otherwise networkd configures it from the
// files under root (as after a reboot). root must exist and be readable by the systemd-network user.
func NewSite(t T, id, root string, handConfigured bool) *Site {
	t.Helper()
	s := &Site{t: t, Root: root}
	s.Host = NewNetns(t, id, "host")
	s.GW = NewNetns(t, id, "gw")
	s.LAN = NewNetns(t, id, "lan")
	s.Client = NewNetns(t, id, "client")

	s.LAN.IP("link", "add", "br0", "type", "bridge")
	s.LAN.IP("link", "set", "br0", "up")
	link := func(a *Netns, aName string, b *Netns, bName string) {
		a.IP("link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
		a.IP("link", "set", aName, "up")
		b.IP("link", "set", bName, "up")
	}
	link(s.Host, "eth-a", s.GW, "gw-a")
	link(s.Host, "eth-b", s.LAN, "lan-h")
	link(s.GW, "gw-lan", s.LAN, "lan-g")
	link(s.Client, "cl", s.LAN, "lan-c")
	for _, port := range []string{"lan-h", "lan-g", "lan-c"} {
		s.LAN.IP("link", "set", port, "master", "br0")
	}

	s.GW.IP("addr", "add", "192.168.1.1/24", "dev", "gw-a")
	s.GW.IP("addr", "add", "10.0.0.254/24", "dev", "gw-lan")
	s.GW.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	s.GW.Exec("nft", "add table inet gw; add chain inet gw forward { type filter hook forward priority 0; policy accept; }; add rule inet gw forward ct state invalid drop")
	s.GW.Exec("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0")

	s.Client.IP("addr", "add", ClientIP+"/24", "dev", "cl")
	s.Client.IP("route", "add", "default", "via", "10.0.0.254")

	if handConfigured {
		s.Host.IP("addr", "add", HostA+"/24", "dev", "eth-a")
		s.Host.IP("addr", "add", HostB+"/24", "dev", "eth-b")
		s.Host.IP("route", "add", "default", "via", "192.168.1.1")
	}
	s.startHost()
	return s
}

// startHost starts what every site's host runs: an echo server on EchoPort, its own bus, networkd on the site's
// root and a systemd manager that restarts networkd.
func (s *Site) startHost() {
	s.t.Helper()
	s.Host.Serve(s.t, "0.0.0.0:"+EchoPort)
	s.Bus = StartBus(s.t)
	s.Networkd = StartNetworkd(s.t, s.Host, s.Bus, s.Root)
	s.Networkd.WaitReady(s.t)
	s.Manager = StartManager(s.t, s.Bus, "252", func(unit string) error {
		if unit != "systemd-networkd.service" {
			return fmt.Errorf("no unit %s here", unit)
		}
		s.RestartNetworkd()
		return nil
	})
}

// RestartNetworkd stops networkd and starts it again on the same files, as systemctl restart would.
func (s *Site) RestartNetworkd() {
	s.t.Helper()
	s.Networkd.Stop()
	s.Networkd = StartNetworkd(s.t, s.Host, s.Bus, s.Root)
	s.Networkd.WaitReady(s.t)
}

// AddPod joins a Calico-style pod to the host: a veth whose host side (cali1) answers ARP for the pod's gateway
// 169.254.1.1 by proxy, the pod a /32 with a default route through that gateway, and a host route to the pod in
// main, as Felix writes it.
func (s *Site) AddPod(id string) *Netns {
	s.t.Helper()
	pod := NewNetns(s.t, id, "pod")
	s.Host.IP("link", "add", "cali1", "type", "veth", "peer", "name", "eth0", "netns", pod.Name)
	s.Host.IP("link", "set", "cali1", "up")
	// Proxy ARP answers only on a forwarding device; a Kubernetes node forwards.
	s.Host.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.cali1.proxy_arp=1")
	s.Host.IP("route", "add", PodIP+"/32", "dev", "cali1", "scope", "link")
	pod.IP("link", "set", "eth0", "up")
	pod.IP("addr", "add", PodIP+"/32", "dev", "eth0")
	pod.IP("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
	pod.IP("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
	return pod
}

// ClientReachesA is the user-visible question: can the LAN client use the host's first-NIC address?
func (s *Site) ClientReachesA() error { return s.Client.Echo(HostA+":"+EchoPort, "") }

// Run runs a program (symroute) inside the host namespace on the site's bus, and returns its exit status and
// combined output.
func (s *Site) Run(bin string, args ...string) (int, string) {
	s.t.Helper()
	return RunIn(s.t, s.Host, s.Bus, bin, args...)
}

// RunIn runs a program inside ns with bus as its system bus, and returns its exit status and combined output.
func RunIn(t T, ns *Netns, bus *Bus, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, bin}, args...)...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address)
	out, err := cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), string(out)
	} else if err != nil {
		t.Fatalf("run %s %s: %v", bin, strings.Join(args, " "), err)
	}
	return 0, string(out)
}

// Description returns the host description that matches the site's host, with rpFilter on both interfaces and
// topLevel lines (cni:, cluster_cidrs:) after the version.
func Description(rpFilter string, topLevel ...string) string {
	var b strings.Builder
	b.WriteString("version: 1\n")
	for _, l := range topLevel {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, `interfaces:
  - name: eth-a
    addresses: [%s/24]
    gateway: 192.168.1.1
    default_route: true
    rp_filter: %s
  - name: eth-b
    addresses: [%s/24]
    gateway: 10.0.0.254
    rp_filter: %s
`, HostA, rpFilter, HostB, rpFilter)
	return b.String()
}
