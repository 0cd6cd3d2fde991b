package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/symroute/symroute/internal/tools/nettest"
)

// The dynamic-address scenarios: eth-b takes its IPv4 address from DHCP (dnsmasq) and its IPv6 address from
// rb's router advertisements (radvd), on a LAN whose router rb also reaches a client beyond it; eth-a is static
// and carries main's default routes through the stateful router ra. See nettest.DynamicSite.

// followerUnit is the unit that keeps a from rule for each of eth-b's current addresses.
const followerUnit = "symroute-follow-addresses.service"

// followerProtocol is the protocol of the follower's rules.
const followerProtocol = 83

// dynSite is the dynamic site with the assertions its scenarios share.
type dynSite struct {
	*site
	dyn *nettest.DynamicSite
}

// newDynSite builds the dynamic site with handMade as eth-b's .network file (a host's own configuration before
// symroute, in /etc/systemd/network/50-eth-b.network) and networkd running on it.
func newDynSite(t *testing.T, handMade string) *dynSite {
	t.Helper()
	nettest.RequireDynamic(t)
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "etc/systemd/network")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "50-eth-b.network"), []byte(handMade), 0o644); err != nil {
		t.Fatal(err)
	}
	id := nettest.RunID(t)
	dyn := nettest.NewDynamicSite(t, id, root)
	return &dynSite{site: &site{Site: dyn.Site, t: t, bin: symrouteBinary(t), id: id}, dyn: dyn}
}

// dynDescription describes the dynamic site's host: eth-a static with main's default routes, eth-b with dhcp4
// and accept_ra as given and strict rp_filter.
func dynDescription(dhcp4, acceptRA bool) string {
	return fmt.Sprintf(`version: 1
interfaces:
  - name: eth-a
    addresses: [%s/24, %s/64]
    gateway: 192.168.1.1
    gateway6: %s
    default_route: true
  - name: eth-b
    dhcp4: %t
    accept_ra: %t
    rp_filter: strict
`, hostA, nettest.DynHostA6, nettest.DynGateway6, dhcp4, acceptRA)
}

// dflow is one TCP connection with data echoed back: from a namespace to addr, from source when it is set.
type dflow struct {
	name         string
	from         *nettest.Netns
	addr, source string
	works        bool
}

func hostPort(addr string) string { return net.JoinHostPort(addr, echoPort) }

// toB is the client, beyond rb, connecting to eth-b's address addr: its reply must leave by eth-b.
func (s *dynSite) toB(addr string, works bool) dflow {
	return dflow{"client -> eth-b's " + addr, s.Client, hostPort(addr), "", works}
}

// fromB is the host connecting to the client from eth-b's address addr: it must leave by eth-b.
func (s *dynSite) fromB(addr string, works bool) dflow {
	client := nettest.DynClient
	if strings.Contains(addr, ":") {
		client = nettest.DynClient6
	}
	return dflow{"host from eth-b's " + addr + " -> client", s.Host, hostPort(client), addr, works}
}

// toLAN is the host connecting, from no address in particular, to the peer on eth-b's LAN: directly by eth-b.
func (s *dynSite) toLAN(peer string) dflow {
	return dflow{"host -> LAN peer " + peer, s.Host, hostPort(peer), "", true}
}

// expect tries every flow at once and fails the test for each that does not end as expected. It returns how
// many packets ra dropped meanwhile as INVALID (replies of connections it never saw) and as from a source not of
// eth-a's subnet.
func (s *dynSite) expect(when string, flows ...dflow) (invalid, spoofed uint64) {
	s.t.Helper()
	inv, spo := s.dyn.GWInvalid(), s.dyn.GWSpoofed()
	checks := make([]flowCheck, len(flows))
	for i, f := range flows {
		checks[i] = flowCheck{f.name, f.works, func() error { return f.from.Echo(f.addr, f.source) }}
	}
	if !checkFlows(s.t, when, checks) || s.t.Failed() {
		s.t.FailNow()
	}
	return s.dyn.GWInvalid() - inv, s.dyn.GWSpoofed() - spo
}

// follower is what the follower unit's ExecStart= asks for eth-b: its table and priority.
type follower struct{ table, priority int }

// followerOf reads eth-b's IFACE:TABLE:PRIORITY argument from the generated unit.
func (s *dynSite) followerOf() follower {
	s.t.Helper()
	for _, a := range s.dyn.UnitArgs(followerUnit) {
		f := strings.Split(a, ":")
		if len(f) != 3 || f[0] != "eth-b" {
			continue
		}
		table, err1 := strconv.Atoi(f[1])
		prio, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			s.t.Fatalf("%s: eth-b's argument %q is not IFACE:TABLE:PRIORITY", followerUnit, a)
		}
		return follower{table, prio}
	}
	s.t.Fatalf("%s has no argument for eth-b: %v", followerUnit, s.dyn.UnitArgs(followerUnit))
	return follower{}
}

// followed returns the sources of the follower's rules of family: at its priority, to its table, with its
// protocol. Any other rule at that priority fails the test.
func (s *dynSite) followed(f follower, family int) []string {
	s.t.Helper()
	var srcs []string
	for _, r := range s.dyn.Rules(family, f.priority) {
		if r.Table != f.table || r.Protocol != followerProtocol || r.Src == "" {
			s.t.Fatalf("a rule at the follower's priority %d that is not one of its rules (from <address> lookup %d protocol %d): %+v",
				f.priority, f.table, followerProtocol, r)
		}
		srcs = append(srcs, r.Src)
	}
	slices.Sort(srcs)
	return srcs
}

// waitFollowed waits up to limit for the follower's rules, both families, to be exactly eth-b's global
// addresses (tentative ones included, as the kernel lists them), and for want to be among them.
func (s *dynSite) waitFollowed(f follower, limit time.Duration, want ...string) {
	s.t.Helper()
	var rules, addrs []string
	nettest.Eventually(s.t, limit, func() bool {
		rules, addrs = nil, nil
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			rules = append(rules, s.followed(f, fam)...)
		}
		for _, fam := range []string{"-4", "-6"} {
			addrs = append(addrs, s.globalAddresses(fam)...)
		}
		slices.Sort(rules)
		slices.Sort(addrs)
		for _, w := range want {
			if !slices.Contains(rules, w) {
				return false
			}
		}
		return slices.Equal(rules, addrs)
	}, func() string {
		return fmt.Sprintf("the follower's rules (priority %d, table %d, protocol %d) %v to be eth-b's addresses %v, with %v",
			f.priority, f.table, followerProtocol, rules, addrs, want)
	})
}

// globalAddresses returns eth-b's global addresses of family, tentative ones included, failed ones not.
func (s *dynSite) globalAddresses(family string) []string {
	s.t.Helper()
	var out []string
	for _, line := range strings.Split(s.Host.IP(family, "-o", "addr", "show", "dev", "eth-b", "scope", "global"), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && !strings.Contains(line, "dadfailed") {
			a, _, _ := strings.Cut(f[3], "/")
			out = append(out, a)
		}
	}
	return out
}

// startFollower starts the follower unit as systemd would at boot, unless apply had the manager start it.
func (s *dynSite) startFollower() {
	s.t.Helper()
	if s.Manager.Count(followerUnit) > 0 {
		return
	}
	s.dyn.StartService(followerUnit)
}

// routeGet returns `ip route get` for dst on the host, from src when set.
func (s *dynSite) routeGet(dst, src string) string {
	s.t.Helper()
	args := []string{"route", "get", dst}
	if src != "" {
		args = append(args, "from", src)
	}
	return s.Host.IP(args...)
}

// expectRoute fails the test unless `ip route get dst` leaves by dev.
func (s *dynSite) expectRoute(dst, dev, why string) {
	s.t.Helper()
	if out := s.routeGet(dst, ""); !strings.Contains(out, " dev "+dev+" ") {
		s.t.Errorf("%s: ip route get %s does not leave by %s:\n%s", why, dst, dev, out)
	}
}

// expectTable fails the test unless each line appears at the start of a route of the table (family "-4"/"-6").
func (s *dynSite) expectTable(family string, table int, lines ...string) {
	s.t.Helper()
	out := s.Host.IP(family, "route", "show", "table", strconv.Itoa(table))
	for _, l := range lines {
		found := false
		for _, r := range strings.Split(out, "\n") {
			found = found || strings.HasPrefix(r, l)
		}
		if !found {
			s.t.Errorf("table %d (%s) has no route %q:\n%s", table, family, l, out)
		}
	}
}

// expectMainDefault fails the test unless main's default route of family goes by eth-a, and by eth-a alone.
func (s *dynSite) expectMainDefault(family, gateway string) {
	s.t.Helper()
	out := s.Host.IP(family, "route", "show", "table", "main", "default")
	if !strings.Contains(out, "via "+gateway+" dev eth-a") || strings.Contains(out, "eth-b") {
		s.t.Errorf("main's %s default route is not via %s by eth-a alone:\n%s", family, gateway, out)
	}
}

// sysctl reads one of the host's sysctl values.
func (s *dynSite) sysctl(key string) string {
	s.t.Helper()
	return strings.TrimSpace(s.Host.Exec("sysctl", "-n", key))
}

const handMadeDHCP = "[Match]\nName=eth-b\n\n[Network]\nDHCP=ipv4\n"

// TestDynamicDHCPv4: eth-b takes its address from DHCP. Before symroute, with a hand-made .network file, a request
// from the client beyond rb to the leased address is answered by main's default route through ra, which drops
// the reply, and a connection the host opens from the leased address leaves by eth-a and ra drops it too. After
// apply with dhcp4 (the lease's routes in eth-b's table, the follower's from rule for the leased address,
// connection tracking) both work, with strict rp_filter; the host's own traffic to the LAN still goes straight
// out of eth-b and its default stays by eth-a. With the follower stopped and its rule deleted, connections from
// the leased address fail again.
func TestDynamicDHCPv4(t *testing.T) {
	t.Parallel()
	s := newDynSite(t, handMadeDHCP)
	lease := nettest.FirstLease
	s.dyn.WaitLease(lease, 20*time.Second)

	invalid, spoofed := s.expect("before symroute", s.toB(lease, false), s.fromB(lease, false), s.toLAN(nettest.LANPeer))
	if invalid == 0 || spoofed == 0 {
		t.Fatalf("before symroute: ra dropped %d invalid and %d spoofed packets; the flows failed elsewhere", invalid, spoofed)
	}

	desc := s.describe("host.yaml", dynDescription(true, false))
	f, _, _ := s.applyDynamic(desc, true, false)
	s.expect("after apply", s.toB(lease, true), s.fromB(lease, true), s.toLAN(nettest.LANPeer))
	s.expectTable("-4", f.table, nettest.LANSubnet+" dev eth-b", "default via "+nettest.LANRouter+" dev eth-b")
	s.expectRoute("10.2.0.7", "eth-b", "the host's own traffic to its LAN")
	s.expectRoute(nettest.DynClient, "eth-a", "the host's own traffic elsewhere")
	s.expectMainDefault("-4", "192.168.1.1")
	if v := s.sysctl("net.ipv4.conf.eth-b.rp_filter"); v != "1" {
		t.Errorf("eth-b's rp_filter is %s after apply, want 1 (strict)", v)
	}
	s.mustSymroute(0, "verify", "-c", desc)

	// Drift: the follower stopped and its rule gone (apply made the rule too; from here on only the follower
	// can put it back). Requests still work (connection tracking); connections from the lease do not, and verify
	// names the missing rule.
	s.dyn.StopService(followerUnit)
	s.Host.IP("rule", "del", "from", lease, "priority", strconv.Itoa(f.priority))
	s.expect("without the follower's rule", s.toB(lease, true), s.fromB(lease, false))
	if code, out := s.symroute("verify", "-c", desc); code != 1 || !strings.Contains(out, "[rule_missing]") || !strings.Contains(out, "from "+lease+" ") {
		t.Errorf("verify with the follower stopped and its rule for %s gone exited %d, want 1 with a rule_missing finding for it:\n%s", lease, code, out)
	}
	s.dyn.StartService(followerUnit)
	s.waitFollowed(f, 5*time.Second, lease)
	s.expect("with the follower started again", s.fromB(lease, true))
	s.mustSymroute(0, "verify", "-c", desc)

	// networkd stopped (it releases the lease: the address goes, and the follower deletes its rule) and started
	// again, then told to configure eth-b again (which deletes every rule no .network file made, the follower's
	// too): the follower, which depends on neither, puts the rule back each time, with no symroute running.
	s.Networkd.Stop()
	s.waitFollowed(f, 5*time.Second)
	if rules := s.followed(f, netlink.FAMILY_V4); len(rules) != 0 {
		t.Errorf("with networkd stopped and the lease released, the follower kept %v", rules)
	}
	// eth-a's IPv4 address was set by hand, without the broadcast networkd 252 computes, which it refuses on a
	// start: networkd gives it the address again, as at boot.
	s.Host.IP("-4", "addr", "flush", "dev", "eth-a")
	s.Networkd = nettest.StartNetworkd(t, s.Host, s.Bus, s.Root)
	s.Networkd.WaitReady(t)
	s.Networkd.WaitConfigured(t, s.Host, 20*time.Second, "eth-a")
	s.dyn.WaitLease(lease, 20*time.Second)
	s.waitFollowed(f, 5*time.Second, lease)
	s.expect("after networkd started again", s.toB(lease, true), s.fromB(lease, true))
	if code, out := nettest.RunIn(t, s.Host, s.Bus, "networkctl", "reconfigure", "eth-b"); code != 0 {
		t.Fatalf("networkctl reconfigure eth-b: %d\n%s", code, out)
	}
	s.dyn.WaitLease(lease, 20*time.Second)
	s.waitFollowed(f, 5*time.Second, lease)
	s.expect("after networkctl reconfigure", s.toB(lease, true), s.fromB(lease, true))
	s.mustSymroute(0, "verify", "-c", desc)
}

// TestDynamicDHCPv4DropIn: a cloud image's own DHCP file for eth-b (with a route metric of its own) stays, and
// symroute extends it with a drop-in (mode: drop-in): the lease's routes go to eth-b's table, and requests to the
// lease from beyond rb and connections from it work, as in own mode; main's default stays by eth-a. remove --all
// then deletes the follower's rules (which outlive the stopped follower) and symroute's files, and keeps the
// image's.
func TestDynamicDHCPv4DropIn(t *testing.T) {
	t.Parallel()
	s := newDynSite(t, "[Match]\nName=eth-b\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nRouteMetric=200\n")
	lease := nettest.FirstLease
	s.dyn.WaitLease(lease, 20*time.Second)
	if invalid, spoofed := s.expect("before symroute", s.toB(lease, false), s.fromB(lease, false)); invalid == 0 || spoofed == 0 {
		t.Fatalf("before symroute: ra dropped %d invalid and %d spoofed packets; the flows failed elsewhere", invalid, spoofed)
	}

	desc := s.describe("host.yaml", strings.Replace(dynDescription(true, false), "  - name: eth-b\n", "  - name: eth-b\n    mode: drop-in\n", 1))
	f, _, _ := s.applyDynamic(desc, true, false)
	if _, err := os.Stat(filepath.Join(s.Root, "etc/systemd/network/50-eth-b.network.d/90-symroute.conf")); err != nil {
		t.Errorf("no drop-in next to the image's file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "etc/systemd/network/10-symroute-eth-b.network")); err == nil {
		t.Errorf("drop-in mode wrote symroute's own file for eth-b")
	}
	s.expect("after apply", s.toB(lease, true), s.fromB(lease, true), s.toLAN(nettest.LANPeer))
	s.expectTable("-4", f.table, nettest.LANSubnet+" dev eth-b", "default via "+nettest.LANRouter+" dev eth-b")
	s.expectRoute("10.2.0.7", "eth-b", "the host's own traffic to its LAN")
	s.expectMainDefault("-4", "192.168.1.1")
	s.mustSymroute(0, "verify", "-c", desc)

	// remove: on a host it stops the unit through the manager (under --root it does not), and deletes the
	// follower's rules, which outlive a stopped follower; the image's file stays and keeps its lease.
	s.dyn.StopService(followerUnit)
	if len(s.followed(f, netlink.FAMILY_V4)) == 0 {
		t.Fatal("the stopped follower took its rules with it: remove's deleting them proves nothing")
	}
	out := s.mustSymroute(0, "remove", "--all")
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		if rules := s.dyn.Rules(fam, f.priority); len(rules) != 0 {
			t.Errorf("remove --all left rules at the follower's priority %d: %+v\n%s", f.priority, rules, out)
		}
	}
	for _, family := range []string{"-4", "-6"} {
		if rules := s.Host.IP(family, "rule"); len(symroutePriorities(rules)) != 0 {
			t.Errorf("remove --all left rules (%s):\n%s", family, rules)
		}
	}
	for _, file := range []string{"etc/systemd/network/50-eth-b.network.d/90-symroute.conf", "etc/systemd/system/" + followerUnit,
		"etc/systemd/system/sysinit.target.wants/" + followerUnit, "etc/symroute/90-symroute-follow-addresses"} {
		if _, err := os.Lstat(filepath.Join(s.Root, file)); err == nil {
			t.Errorf("remove --all left %s", file)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Root, "etc/systemd/network/50-eth-b.network")); err != nil {
		t.Errorf("remove --all took the image's own file: %v", err)
	}
	s.dyn.WaitLease(lease, 20*time.Second)
}

// applyDynamic applies desc, has the follower run as systemd would after apply, and waits for eth-b's addresses
// (the lease when dhcp4 is set, an address in FirstPrefix when accept_ra is) and the follower's rules for them.
// It returns the follower's arguments and the addresses.
func (s *dynSite) applyDynamic(desc string, dhcp4, acceptRA bool) (f follower, lease, slaac string) {
	s.t.Helper()
	s.mustSymroute(0, "apply", "-c", desc)
	s.startFollower()
	f = s.followerOf()
	var want []string
	if dhcp4 {
		lease = nettest.FirstLease
		s.dyn.WaitLease(lease, 20*time.Second)
		want = append(want, lease)
	}
	if acceptRA {
		slaac = s.dyn.WaitSLAAC(nettest.FirstPrefix, 20*time.Second)
		want = append(want, slaac)
	}
	s.waitFollowed(f, 5*time.Second, want...)
	return f, lease, slaac
}

// TestDynamicDHCPv4LeaseMoves: after apply, the DHCP server moves eth-b's lease to another address (and eth-b's
// carrier bounces, as networkd learns of a move only then or at T2). Without symroute running, the follower's
// rule follows within seconds: the old address's rule is gone, the new one's is there with its protocol, and the
// client's requests to the new address and the host's connections from it work; verify still passes.
func TestDynamicDHCPv4LeaseMoves(t *testing.T) {
	t.Parallel()
	s := newDynSite(t, handMadeDHCP)
	s.dyn.WaitLease(nettest.FirstLease, 20*time.Second)
	if invalid, _ := s.expect("before symroute", s.toB(nettest.FirstLease, false)); invalid == 0 {
		t.Fatal("before symroute: ra dropped nothing; the request failed elsewhere")
	}

	desc := s.describe("host.yaml", dynDescription(true, false))
	f, old, _ := s.applyDynamic(desc, true, false)
	s.expect("after apply", s.toB(old, true), s.fromB(old, true))

	const moved = "10.2.0.60"
	start := s.dyn.MoveLease(moved)
	// networkd asks for the old address first and waits out that request before it asks anew: seconds, more on a
	// loaded machine.
	s.dyn.WaitLease(moved, 60*time.Second)
	leased := time.Since(start)
	s.waitFollowed(f, 5*time.Second, moved)
	t.Logf("lease moved to %s %.2f s after the carrier went down; the follower's rule followed %.2f s after it",
		moved, leased.Seconds(), time.Since(start).Seconds()-leased.Seconds())
	for _, src := range s.followed(f, netlink.FAMILY_V4) {
		if src == old {
			t.Errorf("the follower's rule for the old address %s is still there", old)
		}
	}
	s.expect("after the lease moved", s.toB(moved, true), s.fromB(moved, true), s.toLAN(nettest.LANPeer))
	s.expectTable("-4", f.table, nettest.LANSubnet+" dev eth-b", "default via "+nettest.LANRouter+" dev eth-b")
	s.mustSymroute(0, "verify", "-c", desc)
}

const handMadeRA = "[Match]\nName=eth-b\n\n[Network]\nIPv6AcceptRA=yes\n"

// TestDynamicSLAAC: eth-b takes its IPv6 address from rb's router advertisements. Before symroute, with a
// hand-made .network file, the reply to the client beyond rb and a connection from the SLAAC address leave by
// eth-a's default and ra drops them. After apply with accept_ra both work: eth-b's table holds the prefix and the
// default via rb's link-local address, the host reaches its LAN directly and main's default stays by eth-a. When
// radvd switches to another prefix the follower adds the new address's rule, without symroute, and both the new
// and the old (still valid) address work.
func TestDynamicSLAAC(t *testing.T) {
	t.Parallel()
	s := newDynSite(t, handMadeRA)
	a6 := s.dyn.WaitSLAAC(nettest.FirstPrefix, 20*time.Second)
	invalid, spoofed := s.expect("before symroute", s.toB(a6, false), s.fromB(a6, false), s.toLAN(nettest.LANPeer6))
	if invalid == 0 || spoofed == 0 {
		t.Fatalf("before symroute: ra dropped %d invalid and %d spoofed packets; the flows failed elsewhere", invalid, spoofed)
	}

	desc := s.describe("host.yaml", dynDescription(false, true))
	f, _, a6 := s.applyDynamic(desc, false, true)
	s.expect("after apply", s.toB(a6, true), s.fromB(a6, true), s.toLAN(nettest.LANPeer6))
	rbLL := s.dyn.RouterLinkLocal()
	s.expectTable("-6", f.table, nettest.FirstPrefix+" dev eth-b", "default via "+rbLL+" dev eth-b")
	s.expectRoute("fd00:2::7", "eth-b", "the host's own traffic to its LAN")
	s.expectRoute(nettest.DynClient6, "eth-a", "the host's own traffic elsewhere")
	s.expectMainDefault("-6", nettest.DynGateway6)
	s.mustSymroute(0, "verify", "-c", desc)

	const next = "fd00:3::/64"
	start := time.Now()
	s.dyn.SwitchPrefix(next)
	n6 := s.dyn.WaitSLAAC(next, 20*time.Second)
	usable := time.Since(start)
	s.waitFollowed(f, 5*time.Second, n6, a6)
	t.Logf("address %s usable %.2f s after radvd switched to %s; the follower's rule followed %.2f s after it",
		n6, usable.Seconds(), next, time.Since(start).Seconds()-usable.Seconds())
	s.expect("after radvd switched prefix", s.toB(n6, true), s.fromB(n6, true), s.toB(a6, true), s.fromB(a6, true))
	s.expectTable("-6", f.table, next+" dev eth-b", "default via "+rbLL+" dev eth-b")
	s.mustSymroute(0, "verify", "-c", desc)
}

// TestDynamicRebootFromFiles: after apply with dhcp4 and accept_ra, the follower and networkd stopped (which
// releases the lease), symroute's nftables table, rules and tables deleted, its sysctls undone and the links down
// without addresses; then what the boot runs, on the files symroute wrote and without symroute: the connmark
// unit's ExecStart=, systemd-sysctl on the sysctl.d file, the follower unit (both found through their
// sysinit.target.wants links) and networkd. Requests to the lease and the SLAAC address and connections from them
// work again, and verify passes.
func TestDynamicRebootFromFiles(t *testing.T) {
	t.Parallel()
	s := newDynSite(t, "[Match]\nName=eth-b\n\n[Network]\nDHCP=ipv4\nIPv6AcceptRA=yes\n")
	s.dyn.WaitLease(nettest.FirstLease, 20*time.Second)
	a6 := s.dyn.WaitSLAAC(nettest.FirstPrefix, 20*time.Second)
	if invalid, _ := s.expect("before symroute", s.toB(nettest.FirstLease, false), s.toB(a6, false)); invalid == 0 {
		t.Fatal("before symroute: ra dropped nothing; the requests failed elsewhere")
	}

	desc := s.describe("host.yaml", dynDescription(true, true))
	f, lease, a6 := s.applyDynamic(desc, true, true)
	all := func(works bool) []dflow {
		return []dflow{s.toB(lease, works), s.fromB(lease, works), s.toB(a6, works), s.fromB(a6, works)}
	}
	s.expect("after apply", append(all(true), s.toLAN(nettest.LANPeer), s.toLAN(nettest.LANPeer6))...)
	s.mustSymroute(0, "verify", "-c", desc)

	// Shutdown, and what a booting host has not yet: symroute's table, rules, routes and sysctls.
	s.dyn.StopService(followerUnit)
	s.Networkd.Stop()
	s.Host.Exec("nft", "delete", "table", "inet", "symroute")
	for _, family := range []string{"-4", "-6"} {
		for _, pref := range symroutePriorities(s.Host.IP(family, "rule")) {
			s.Host.IP(family, "rule", "del", "pref", pref)
		}
		for _, table := range symrouteTables(s.Host.IP(family, "route", "show", "table", "all")) {
			s.Host.IP(family, "route", "flush", "table", table)
		}
	}
	s.Host.Exec("sysctl", "-qw", "net.ipv4.conf.eth-b.src_valid_mark=0", "net.ipv4.conf.eth-b.rp_filter=0")
	for _, l := range []string{"eth-a", "eth-b"} {
		s.Host.IP("link", "set", l, "down")
		s.Host.IP("addr", "flush", "dev", l)
	}

	// The boot: sysinit.target pulls both units in through their wants links, before networkd.
	connmark := s.wantedBySysinit("symroute-connmark.service")
	argv := unitExecStart(t, connmark)
	for i, arg := range argv {
		if strings.HasPrefix(arg, "/etc/") {
			argv[i] = filepath.Join(s.Root, arg)
		}
	}
	s.Host.Exec(argv...)
	s.Host.Exec("/lib/systemd/systemd-sysctl", filepath.Join(s.Root, "etc/sysctl.d/90-symroute.conf"))
	s.wantedBySysinit(followerUnit)
	s.dyn.StartService(followerUnit)
	s.Networkd = nettest.StartNetworkd(t, s.Host, s.Bus, s.Root)
	s.dyn.WaitLease(lease, 20*time.Second)
	if got := s.dyn.WaitSLAAC(nettest.FirstPrefix, 20*time.Second); got != a6 {
		t.Fatalf("after the reboot eth-b's SLAAC address is %s, not %s as before", got, a6)
	}
	s.waitFollowed(f, 5*time.Second, lease, a6)
	if v := s.sysctl("net.ipv4.conf.eth-b.src_valid_mark"); v != "1" {
		t.Errorf("after the reboot eth-b's src_valid_mark is %s, want 1", v)
	}
	s.expect("after the reboot, without symroute", append(all(true), s.toLAN(nettest.LANPeer), s.toLAN(nettest.LANPeer6))...)
	s.expectTable("-4", f.table, nettest.LANSubnet+" dev eth-b", "default via "+nettest.LANRouter+" dev eth-b")
	s.expectTable("-6", f.table, nettest.FirstPrefix+" dev eth-b", "default via "+s.dyn.RouterLinkLocal()+" dev eth-b")
	s.expectMainDefault("-4", "192.168.1.1")
	s.expectMainDefault("-6", nettest.DynGateway6)
	s.mustSymroute(0, "verify", "-c", desc)
}

// wantedBySysinit returns the unit file that the root's sysinit.target.wants link for unit points to, and fails
// the test when there is no such link: the boot would not start the unit.
func (s *dynSite) wantedBySysinit(unit string) string {
	s.t.Helper()
	link := filepath.Join(s.Root, "etc/systemd/system/sysinit.target.wants", unit)
	target, err := os.Readlink(link)
	if err != nil {
		s.t.Fatalf("the boot would not start %s: %v", unit, err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join("/etc/systemd/system/sysinit.target.wants", target)
	}
	return filepath.Join(s.Root, target)
}

// symrouteTables returns the tables of `ip route show table all` output that fall in symroute's default
// table_range, once each.
func symrouteTables(routes string) []string {
	var out []string
	for _, line := range strings.Split(routes, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if n, err := strconv.Atoi(f[i+1]); f[i] == "table" && err == nil && n >= 1000000 && n <= 1009999 && !slices.Contains(out, f[i+1]) {
				out = append(out, f[i+1])
			}
		}
	}
	return out
}
