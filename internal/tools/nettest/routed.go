package nettest

import (
	"regexp"
	"strconv"
	"strings"
)

// RoutedSite is the topology of a node that serves addresses it has no description of (a LoadBalancer address, a
// VIP) on its second NIC, behind a router:
//
//	client 172.16.50.2 --- rb 172.16.50.1
//	                       rb 10.0.0.254 --- host eth-b 10.0.0.1      (rb routes RouteToHost's addresses to 10.0.0.1)
//	                       rb 10.9.0.2 ----- ra 10.9.0.1
//	                                         ra 192.168.1.1 --- host eth-a 192.168.1.10   (the host's default route)
//
// ra is stateful: it drops conntrack INVALID packets, counting them, with tcp_loose=0. A request that comes in by
// rb and is answered by the host's default route reaches ra as a SYN-ACK of a connection ra never saw, and dies
// there; a request to eth-a's address through ra is answered through ra and works.
type RoutedSite struct {
	// Site's GW is ra and its Client the client beyond rb; LAN is nil.
	*Site
	// RB is the router in front of eth-b.
	RB *Netns
}

// Addresses of the routed site.
const (
	RoutedClientIP = "172.16.50.2"
	RBAddress      = "10.0.0.254"
)

// NewRoutedSite builds the topology under the names symroute-<id>-<role>, the host configured by hand (its
// addresses and its default route through ra, as before symroute) with forwarding on, an echo server on
// 0.0.0.0:EchoPort, and networkd running on the files under root.
func NewRoutedSite(t T, id, root string) *RoutedSite {
	t.Helper()
	s := &RoutedSite{Site: &Site{t: t, Root: root}}
	s.Host = NewNetns(t, id, "host")
	s.GW = NewNetns(t, id, "ra")
	s.RB = NewNetns(t, id, "rb")
	s.Client = NewNetns(t, id, "client")
	link := func(a *Netns, aName, aAddr string, b *Netns, bName, bAddr string) {
		a.IP("link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
		a.IP("link", "set", aName, "up")
		b.IP("link", "set", bName, "up")
		if aAddr != "" {
			a.IP("addr", "add", aAddr, "dev", aName)
		}
		b.IP("addr", "add", bAddr, "dev", bName)
	}
	link(s.Host, "eth-a", HostA+"/24", s.GW, "ra-h", "192.168.1.1/24")
	link(s.Host, "eth-b", HostB+"/24", s.RB, "rb-h", RBAddress+"/24")
	link(s.GW, "ra-rb", "10.9.0.1/30", s.RB, "rb-ra", "10.9.0.2/30")
	link(s.Client, "cl", RoutedClientIP+"/24", s.RB, "rb-c", "172.16.50.1/24")

	s.Client.IP("route", "add", "default", "via", "172.16.50.1")
	s.RB.IP("route", "add", "192.168.1.0/24", "via", "10.9.0.1")
	s.GW.IP("route", "add", "172.16.50.0/24", "via", "10.9.0.2")
	for _, r := range []*Netns{s.GW, s.RB, s.Host} {
		r.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	s.GW.Exec("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0")
	s.GW.Exec("nft", "add table inet gw; add counter inet gw dropped; add chain inet gw forward { type filter hook forward priority 0; policy accept; }; add rule inet gw forward ct state invalid counter name dropped drop")

	s.Host.IP("route", "add", "default", "via", "192.168.1.1")
	s.startHost()
	return s
}

// RouteToHost has rb route addr (an address without a prefix length) to the host's eth-b, as a BGP speaker
// announcing a LoadBalancer address has its router do.
func (s *RoutedSite) RouteToHost(addr string) {
	s.t.Helper()
	s.RB.IP("route", "add", addr+"/32", "via", HostB)
}

// GWDrops is how many packets ra has dropped as conntrack INVALID so far.
func (s *RoutedSite) GWDrops() uint64 {
	s.t.Helper()
	return s.GW.Counter("inet", "gw", "dropped")
}

var packets = regexp.MustCompile(`packets (\d+)`)

// Counter returns the packets a named nftables counter in the namespace has counted.
func (n *Netns) Counter(family, table, name string) uint64 {
	n.t.Helper()
	out := n.Exec("nft", "list", "counter", family, table, name)
	m := packets.FindStringSubmatch(out)
	if m == nil {
		n.t.Fatalf("no packet count in %s's counter %s %s %s: %s", n.Name, family, table, name, out)
	}
	v, _ := strconv.ParseUint(m[1], 10, 64)
	return v
}

// NetStat returns one field of the namespace's /proc/net/netstat, such as TcpExt's IPReversePathFilter (packets
// strict or loose reverse-path filtering dropped).
func (n *Netns) NetStat(group, field string) uint64 {
	n.t.Helper()
	lines := strings.Split(n.Exec("cat", "/proc/net/netstat"), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		keys, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != group+":" || len(values) != len(keys) {
			continue
		}
		for j, k := range keys {
			if k == field {
				v, _ := strconv.ParseUint(values[j], 10, 64)
				return v
			}
		}
	}
	n.t.Fatalf("no %s %s in %s's /proc/net/netstat", group, field, n.Name)
	return 0
}
