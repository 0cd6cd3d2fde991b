package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/tools/nettest"
)

// IPv6 addresses of the routed site, given to its links by newV6Site alongside their IPv4 ones.
const (
	hostA6   = "fd00:a::10"  // eth-a; ra-h is fd00:a::1
	hostB6   = "fd00:b::1"   // eth-b; rb-h is fd00:b::fe
	rbB6     = "fd00:b::fe"  // eth-b's gateway6
	client6  = "fd00:50::2"  // the client beyond rb; rb-c is fd00:50::1
	lbAddr6  = "fd00:1::10"  // the IPv6 LoadBalancer address rb routes to eth-b
	podIP6   = "fd00:244::5" // the pod's IPv6 address
	podCIDR6 = "fd00:244::/64"
)

// kubeProxyTable6 is kube-proxy's IPv6 table: the LoadBalancer address DNAT'd to the pod's IPv6 address, with
// kube-proxy's bit set on the request.
var kubeProxyTable6 = fmt.Sprintf(`table ip6 kubeproxy6 {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip6 daddr %[1]s tcp dport %[2]s meta mark set meta mark | %#[5]x dnat to [%[3]s]:%[4]s
	}
}
`, lbAddr6, svcPort, podIP6, echoPort, kubeMark)

// loadNft writes an nftables file into the test's temporary directory and loads it in the host namespace.
func (s *lbSite) loadNft(name, text string) {
	s.t.Helper()
	file := filepath.Join(s.t.TempDir(), name)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.Host.Exec("nft", "-f", file)
}

// newRoutedLB is the routed site with nothing of the service addresses' yet, and the pod's namespace.
func newRoutedLB(t *testing.T) (*lbSite, *nettest.Netns) {
	t.Helper()
	nettest.Require(t)
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	id := nettest.RunID(t)
	routed := nettest.NewRoutedSite(t, id, root)
	s := &lbSite{site: &site{Site: routed.Site, t: t, bin: symrouteBinary(t), id: id}, routed: routed}
	return s, s.addPod()
}

// bridgeB turns eth-b's link into a LAN: rb-h becomes a port of a bridge br0 in rb, which takes rb's address on it.
// Call it before anything is routed through that address.
func (s *lbSite) bridgeB() {
	s.t.Helper()
	rb := s.routed.RB
	rb.IP("addr", "del", nettest.RBAddress+"/24", "dev", "rb-h")
	rb.IP("link", "add", "br0", "type", "bridge")
	rb.IP("link", "set", "br0", "up")
	rb.IP("link", "set", "rb-h", "master", "br0")
	rb.IP("addr", "add", nettest.RBAddress+"/24", "dev", "br0")
	// Where br_netfilter is loaded, frames the bridge merely switches would also pass rb's IP hooks.
	if _, err := rb.Try("sysctl", "-qw", "net.bridge.bridge-nf-call-ip6tables=0", "net.bridge.bridge-nf-call-iptables=0"); err != nil {
		s.t.Logf("rb: no br_netfilter sysctls (%v): bridged frames skip its hooks already", err)
	}
}

// onLANB adds a namespace on eth-b's LAN (bridgeB's br0), its link eth0 up without addresses, not even a
// link-local one.
func (s *lbSite) onLANB(role string) *nettest.Netns {
	s.t.Helper()
	rb := s.routed.RB
	n := nettest.NewNetns(s.t, s.id, role)
	rb.IP("link", "add", "rb-"+role, "type", "veth", "peer", "name", "eth0", "netns", n.Name)
	rb.IP("link", "set", "rb-"+role, "master", "br0")
	rb.IP("link", "set", "rb-"+role, "up")
	n.IP("link", "set", "eth0", "addrgenmode", "none")
	n.IP("link", "set", "eth0", "up")
	return n
}

// newV6Site is the routed site with IPv6 on every link as well (no DAD, so the addresses work at once): the
// client fd00:50::2 beyond rb, rb routing the LoadBalancer address fd00:1::10 to eth-b's fd00:b::1, ra in front
// of eth-a's fd00:a::10 and the host's IPv6 default route through ra. The pod has fd00:244::5 behind cali1
// (gateway: cali1's link-local fe80::1), serving the echo port on both families, and kube-proxy's IPv6 DNAT is
// loaded.
func newV6Site(t *testing.T) *lbSite {
	t.Helper()
	s, pod := newRoutedLB(t)
	s.bridgeB()
	rb, ra, host, client := s.routed.RB, s.GW, s.Host, s.Client
	addr := func(n *nettest.Netns, a, dev string) { n.IP("-6", "addr", "add", a, "dev", dev, "nodad") }
	addr(host, hostA6+"/64", "eth-a")
	addr(ra, "fd00:a::1/64", "ra-h")
	addr(host, hostB6+"/64", "eth-b")
	addr(rb, rbB6+"/64", "br0")
	addr(ra, "fd00:9::1/64", "ra-rb")
	addr(rb, "fd00:9::2/64", "rb-ra")
	addr(client, client6+"/64", "cl")
	addr(rb, "fd00:50::1/64", "rb-c")
	for _, n := range []*nettest.Netns{ra, rb, host} {
		n.Exec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	}
	client.IP("-6", "route", "add", "default", "via", "fd00:50::1")
	rb.IP("-6", "route", "add", "fd00:a::/64", "via", "fd00:9::1")
	rb.IP("-6", "route", "add", lbAddr6+"/128", "via", hostB6)
	ra.IP("-6", "route", "add", "fd00:50::/64", "via", "fd00:9::2")
	host.IP("-6", "route", "add", "default", "via", "fd00:a::1")
	// rb forwards nothing link-local, as RFC 4291 asks of routers: Linux would forward a packet for a link-local
	// address back out the link it came in by, and so hide a reply sent to the gateway instead of the peer.
	rb.Exec("nft", "add table inet rb; add counter inet rb linklocal; add chain inet rb forward { type filter hook forward priority 0; policy accept; }; "+
		"add rule inet rb forward ip6 saddr fe80::/10 counter name linklocal drop; add rule inet rb forward ip6 daddr fe80::/10 counter name linklocal drop")

	addr(host, "fe80::1/64", "cali1")
	host.IP("-6", "route", "add", podIP6+"/128", "dev", "cali1")
	addr(pod, podIP6+"/128", "eth0")
	pod.IP("-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
	pod.Serve(t, "[::]:"+echoPort)

	s.loadNft("kubeproxy6.nft", kubeProxyTable6)
	if err := client.Echo("["+hostA6+"]:"+echoPort, ""); err != nil {
		t.Fatalf("the client cannot reach eth-a's IPv6 address through ra: %v", err)
	}
	return s
}

// v6Description describes the routed host with both families: eth-b tracks connections when track is set.
func v6Description(track bool) string {
	return fmt.Sprintf(`version: 1
cni: [kube-proxy, calico]
cluster_cidrs: [10.244.0.0/16, 10.96.0.0/12, %s]
interfaces:
  - name: eth-a
    addresses: [%s/24, %s/64]
    gateway: 192.168.1.1
    gateway6: fd00:a::1
    default_route: true
  - name: eth-b
    addresses: [%s/24, %s/64]
    gateway: %s
    gateway6: %s
    rp_filter: loose
    track_connections: %t
`, podCIDR6, hostA, hostA6, hostB, hostB6, nettest.RBAddress, rbB6, track)
}

var linkLocal = regexp.MustCompile(`inet6 (fe80::[0-9a-f:]+)/64 scope link(.*)`)

// hostLinkLocalB returns eth-b's link-local address as a peer on eth-b's LAN reaches it through its link zone:
// [fe80::...%zone]:port. It waits up to 5 s for the address to leave DAD's tentative state.
func (s *lbSite) hostLinkLocalB(zone, port string) string {
	s.t.Helper()
	var out string
	for range 50 {
		out = s.Host.IP("-6", "addr", "show", "dev", "eth-b", "scope", "link")
		if m := linkLocal.FindStringSubmatch(out); m != nil && !strings.Contains(m[2], "tentative") {
			return "[" + m[1] + "%" + zone + "]:" + port
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("eth-b has no usable link-local address:\n%s", out)
	return ""
}

// expectLinkLocal has rb (the gateway6, on br0) and neighbor (a host on eth-b's LAN with a link-local address
// alone, on eth0) connect to the host's eth-b link-local address, and fails the test for each that cannot.
func (s *lbSite) expectLinkLocal(when string, neighbor *nettest.Netns) {
	s.t.Helper()
	for _, p := range []struct {
		n    *nettest.Netns
		zone string
	}{{s.routed.RB, "br0"}, {neighbor, "eth0"}} {
		addr := s.hostLinkLocalB(p.zone, altPort)
		if err := p.n.Echo(addr, ""); err != nil {
			s.t.Errorf("%s: %s cannot reach the host's eth-b link-local address %s: %v", when, p.n.Name, addr, err)
		}
	}
	if s.t.Failed() {
		s.t.Logf("host IPv6 rules:\n%s", s.Host.IP("-6", "rule"))
		s.t.Logf("link-local packets rb dropped: %d", s.routed.RB.Counter("inet", "rb", "linklocal"))
		s.t.FailNow()
	}
}

// TestTrackConnectionsIPv6: kube-proxy DNATs an IPv6 LoadBalancer address, routed by rb to eth-b, to the pod's
// IPv6 address. Before symroute the pod's reply leaves by eth-a's IPv6 default route and the stateful ra drops
// it; with track_connections on eth-b it leaves by eth-b. eth-b's link-local peers, rb (its gateway6) and a
// neighbor on its LAN that is not the gateway, reach the host's eth-b link-local address before and after:
// link-local peers are left unmarked (a marked reply would take eth-b's table, whose default sends it to the
// gateway, which does not forward link-local packets, and the neighbor would never see it).
func TestTrackConnectionsIPv6(t *testing.T) {
	t.Parallel()
	s := newV6Site(t)
	neighbor := s.onLANB("nb")
	neighbor.IP("-6", "addr", "add", "fe80::99/64", "dev", "eth0", "nodad")
	s.Host.Serve(t, "[::]:"+altPort)
	lb6 := flow{"IPv6 LoadBalancer " + lbAddr6 + " DNAT'd to the pod", "[" + lbAddr6 + "]:" + svcPort, false}

	s.expectLinkLocal("before symroute", neighbor)
	if drops := s.expectFlows("before symroute", lb6); drops == 0 {
		t.Fatal("before symroute: nothing failed at ra; the IPv6 reply did not leave by eth-a")
	}

	desc := s.describe("host.yaml", v6Description(true))
	s.mustSymroute(0, "apply", "-c", desc)
	s.mustSymroute(0, "verify", "-c", desc)
	lb6.works = true
	s.expectFlows("with track_connections", lb6)
	s.expectLinkLocal("with track_connections", neighbor)
}

// altPort is a second port the host serves on all families (the site's own echo server listens on IPv4).
const altPort = "8081"

// Addresses of the backend on eth-b's own LAN.
const (
	backendIP = "10.0.0.5"      // on rb's bridge, the LAN eth-b sits on
	lbBackend = "198.51.100.40" // a LoadBalancer address the host DNATs to the backend
)

// kubeProxyBackendTable DNATs lbBackend to the backend on eth-b's LAN and masquerades the request there by
// kube-proxy's bit, so the backend answers to the host, back in through eth-b.
var kubeProxyBackendTable = fmt.Sprintf(`table ip kubeproxyb {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %[1]s tcp dport %[2]s meta mark set meta mark | %#[5]x dnat to %[3]s:%[4]s
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & %#[5]x == %#[5]x masquerade
	}
}
`, lbBackend, svcPort, backendIP, echoPort, kubeMark)

// TestTrackConnectionsBackendBackThroughTrackedInterface: the host DNATs a LoadBalancer address that arrives on
// eth-b to a backend on eth-b's own LAN (a bridge in rb), masquerading it, so the request leaves by eth-b and the
// backend's reply comes back in by eth-b. The reply must then leave toward the client by eth-b: by main it takes
// eth-a's default and ra drops it, before symroute and with symroute's source rules alone (the reply is from the
// backend's address, no source rule's). track_connections' request bit sends the request by main (to the
// backend) and the reply, without it, by eth-b's table; an iif rule that ignores the bit sends the reply, which
// also arrives on eth-b, by main again, and it fails.
func TestTrackConnectionsBackendBackThroughTrackedInterface(t *testing.T) {
	t.Parallel()
	s, _ := newRoutedLB(t)
	s.bridgeB()
	backend := s.onLANB("be")
	backend.IP("addr", "add", backendIP+"/24", "dev", "eth0")
	backend.Serve(t, "0.0.0.0:"+echoPort)
	s.routed.RouteToHost(lbBackend)
	s.loadNft("kubeproxyb.nft", kubeProxyBackendTable)
	if err := s.Client.Echo(hostA+":"+echoPort, ""); err != nil {
		t.Fatalf("the client cannot reach eth-a's address through ra: %v", err)
	}
	direct := flow{"the host's eth-b address", hostB + ":" + echoPort, true}
	back := flow{"LoadBalancer " + lbBackend + " DNAT'd to " + backendIP + " on eth-b's LAN", lbBackend + ":" + svcPort, false}

	if drops := s.expectFlows("before symroute", back); drops == 0 {
		t.Fatal("before symroute: nothing failed at ra; the backend's reply did not leave by eth-a")
	}
	s.mustSymroute(0, "apply", "-c", s.describe("host.yaml", trackDescription(false, "loose")))
	if drops := s.expectFlows("with source rules alone", back, direct); drops == 0 {
		t.Fatal("with source rules alone: nothing failed at ra")
	}

	desc := s.describe("host.yaml", trackDescription(true, "loose"))
	s.mustSymroute(0, "apply", "-c", desc)
	s.mustSymroute(0, "verify", "-c", desc)
	back.works = true
	s.expectFlows("with track_connections", back, direct)

	// Without the request bit, the rule that sends requests arriving on eth-b by main would catch the backend's
	// reply too, which also arrives on eth-b with eth-b's value: it would leave by eth-a again.
	rules := s.Host.IP("rule")
	m, v := requestRule.FindStringSubmatch(rules), valueRule.FindStringSubmatch(rules)
	if m == nil || v == nil {
		t.Fatalf("no request rule (iif eth-b, lookup main) or value rule (lookup eth-b's table):\n%s", rules)
	}
	s.Host.IP("rule", "del", "pref", m[1])
	s.Host.IP("rule", "add", "pref", m[1], "fwmark", v[1], "iif", "eth-b", "lookup", "main")
	back.works = false
	if drops := s.expectFlows("with an iif rule that ignores the request bit", back); drops == 0 {
		t.Fatal("with an iif rule that ignores the request bit: nothing failed at ra")
	}
	// apply refuses to work around a rule of someone else's at its priority: the hand-made rule goes first.
	s.Host.IP("rule", "del", "pref", m[1])
	s.mustSymroute(0, "apply", "-c", desc)
	back.works = true
	s.expectFlows("after apply put the request rule back", back, direct)
}

// requestRule is track_connections' request rule in `ip rule` output (its priority), valueRule the rule that
// sends eth-b's value to eth-b's table (its mark and mask).
var (
	requestRule = regexp.MustCompile(`(?m)^(\d+):\s+from all fwmark 0x[0-9a-f]+/0x[0-9a-f]+ iif eth-b lookup main`)
	valueRule   = regexp.MustCompile(`(?m)^\d+:\s+from all fwmark (0x[0-9a-f]+/0x[0-9a-f]+) lookup 1000001`)
)
