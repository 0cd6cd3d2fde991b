package nettest

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/symroute/symroute/internal/tools/testenv"
)

// DynamicSite is the topology of a host whose second NIC takes its addresses from DHCPv4 and from router
// advertisements (SLAAC), behind a router that also reaches a client:
//
//	client 172.16.60.2 fd00:60::2 --- rb rb-c 172.16.60.1 fd00:60::1
//	                                  rb rb-lan 10.2.0.1 fd00:2::1 (radvd) --- lan br0 10.2.0.2 fd00:2::2 (dnsmasq)
//	                                                                           lan br0 --- host eth-b (DHCPv4, SLAAC)
//	                                  rb rb-ra 10.9.0.2 fd00:9::2 ----------- ra ra-rb 10.9.0.1 fd00:9::1
//	                                                                           ra ra-h 192.168.1.1 fd00:a::1
//	                                                                           --- host eth-a 192.168.1.10 fd00:a::10
//
// The host's default routes (by hand, as before symroute) go through ra, which is stateful: it drops conntrack
// INVALID packets (tcp_loose=0), so a reply to a request that came in by rb and eth-b dies there; and it drops
// packets from eth-a's side whose source is not eth-a's subnet, so a connection the host opens from eth-b's address
// that leaves by eth-a dies there too. dnsmasq, in lan, leases eth-b a fixed address by its MAC (FirstLease at
// first) with router 10.2.0.1; radvd, in rb (an advertisement's router is its sender's link-local address), announces
// FirstPrefix. lan (10.2.0.2, fd00:2::2) and the client serve TCP echo on EchoPort on both families, as the host
// does.
type DynamicSite struct {
	// Site's GW is ra, LAN the namespace with eth-b's LAN bridge, the DHCP server and the LAN peer, Client the
	// client beyond rb.
	*Site
	// RB is eth-b's LAN's router: it routes to the client and sends the router advertisements.
	RB *Netns

	dir      string // the DHCP server's and radvd's files, for this run only
	dhcp     *daemon
	radvd    *daemon
	lease    string
	prefixes []string
	mu       sync.Mutex
	services map[string]*Service
	handle   *netlink.Handle
}

// Addresses of the dynamic site.
const (
	DynClient   = "172.16.60.2"
	DynClient6  = "fd00:60::2"
	DynHostA6   = "fd00:a::10"
	DynGateway6 = "fd00:a::1"
	LANRouter   = "10.2.0.1"
	LANRouter6  = "fd00:2::1"
	LANPeer     = "10.2.0.2"
	LANPeer6    = "fd00:2::2"
	LANSubnet   = "10.2.0.0/24"
	// EthBMAC is eth-b's MAC address, by which dnsmasq picks its lease.
	EthBMAC = "02:00:00:00:0b:01"
	// FirstLease is the address dnsmasq leases eth-b until MoveLease.
	FirstLease = "10.2.0.50"
	// FirstPrefix is the prefix radvd advertises until SwitchPrefix.
	FirstPrefix = "fd00:2::/64"
)

// RequireDynamic is Require, plus the DHCP server and radvd the dynamic site runs.
func RequireDynamic(t T) {
	t.Helper()
	Require(t)
	testenv.Program(t, "dnsmasq", "dnsmasq-base")
	testenv.Program(t, "radvd", "radvd")
	testenv.Program(t, "nft", "nftables")
}

// NewDynamicSite builds the topology under the names symroute-<id>-<role>: eth-a configured by hand (its
// addresses and the default routes through ra, as before symroute), eth-b with nothing but its MAC, the DHCP
// server and radvd running, and networkd running on the files under root (so a .network file for eth-b written
// there before has it take a lease). root must exist and be readable by the systemd-network user.
func NewDynamicSite(t T, id, root string) *DynamicSite {
	t.Helper()
	dir, err := os.MkdirTemp("", "symroute-dyn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &DynamicSite{Site: &Site{t: t, Root: root}, dir: dir, services: map[string]*Service{}}
	s.Host = NewNetns(t, id, "host")
	s.GW = NewNetns(t, id, "ra")
	s.RB = NewNetns(t, id, "rb")
	s.LAN = NewNetns(t, id, "lan")
	s.Client = NewNetns(t, id, "client")
	host, ra, rb, lan, client := s.Host, s.GW, s.RB, s.LAN, s.Client

	// Multicast snooping off: with no MLD querier on the LAN it could hold back the router advertisements.
	lan.IP("link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	lan.IP("link", "set", "br0", "up")
	veth := func(a *Netns, aName string, b *Netns, bName string) {
		a.IP("link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
		a.IP("link", "set", aName, "up")
		b.IP("link", "set", bName, "up")
	}
	veth(host, "eth-a", ra, "ra-h")
	host.IP("link", "add", "eth-b", "address", EthBMAC, "type", "veth", "peer", "name", "lan-h", "netns", lan.Name)
	lan.IP("link", "set", "lan-h", "master", "br0")
	lan.IP("link", "set", "lan-h", "up")
	veth(rb, "rb-lan", lan, "lan-rb")
	lan.IP("link", "set", "lan-rb", "master", "br0")
	veth(ra, "ra-rb", rb, "rb-ra")
	veth(client, "cl", rb, "rb-c")

	addr := func(n *Netns, dev string, addrs ...string) {
		for _, a := range addrs {
			if strings.Contains(a, ":") {
				n.IP("-6", "addr", "add", a, "dev", dev, "nodad")
			} else {
				n.IP("addr", "add", a, "dev", dev)
			}
		}
	}
	addr(ra, "ra-h", "192.168.1.1/24", DynGateway6+"/64")
	addr(ra, "ra-rb", "10.9.0.1/30", "fd00:9::1/64")
	addr(rb, "rb-ra", "10.9.0.2/30", "fd00:9::2/64")
	addr(rb, "rb-lan", LANRouter+"/24", LANRouter6+"/64")
	addr(rb, "rb-c", "172.16.60.1/24", "fd00:60::1/64")
	addr(client, "cl", DynClient+"/24", DynClient6+"/64")
	addr(lan, "br0", LANPeer+"/24", LANPeer6+"/64")

	client.IP("route", "add", "default", "via", "172.16.60.1")
	client.IP("-6", "route", "add", "default", "via", "fd00:60::1")
	rb.IP("route", "add", "192.168.1.0/24", "via", "10.9.0.1")
	rb.IP("-6", "route", "add", "fd00:a::/64", "via", "fd00:9::1")
	ra.IP("route", "add", "172.16.60.0/24", "via", "10.9.0.2")
	ra.IP("-6", "route", "add", "fd00:60::/64", "via", "fd00:9::2")
	lan.IP("route", "add", "default", "via", LANRouter)
	for _, r := range []*Netns{ra, rb} {
		r.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	}
	// lan is a plain host on the LAN: it takes no address or route from rb's advertisements.
	lan.Exec("sysctl", "-qw", "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.br0.accept_ra=0")
	ra.Exec("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0")
	ra.Exec("nft", `add table inet gw; add counter inet gw dropped; add counter inet gw spoofed; `+
		`add chain inet gw forward { type filter hook forward priority 0; policy accept; }; `+
		`add rule inet gw forward ct state invalid counter name dropped drop; `+
		`add rule inet gw forward iifname "ra-h" ip saddr != 192.168.1.0/24 counter name spoofed drop; `+
		`add rule inet gw forward iifname "ra-h" ip6 saddr != fd00:a::/64 counter name spoofed drop`)

	client.Serve(t, "[::]:"+EchoPort)
	lan.Serve(t, "[::]:"+EchoPort)
	s.startDHCP(FirstLease)
	s.startRadvd(FirstPrefix)

	// eth-a as before symroute. The IPv6 default's metric (100) is below the one networkd gives an advertised
	// default (1024), so a default that advertisements put in main does not share it.
	addr(host, "eth-a", HostA+"/24", DynHostA6+"/64")
	host.IP("route", "add", "default", "via", "192.168.1.1")
	host.IP("-6", "route", "add", "default", "via", DynGateway6, "metric", "100")
	host.IP("link", "set", "eth-b", "up")

	// The host's own services, on both families, its bus, networkd and a manager that restarts networkd and the
	// services of the root's units.
	host.Serve(t, "[::]:"+EchoPort)
	s.Bus = StartBus(t)
	s.Networkd = StartNetworkd(t, host, s.Bus, root)
	s.Networkd.WaitReady(t)
	s.Manager = StartManager(t, s.Bus, "252", s.restartUnit)
	t.Cleanup(func() {
		if t.Failed() {
			s.logState()
		}
	})
	return s
}

// restartUnit is the manager's restart: networkd, or a service of the root's units, stopped if it runs and
// started again.
func (s *DynamicSite) restartUnit(unit string) error {
	if unit == "systemd-networkd.service" {
		s.RestartNetworkd()
		return nil
	}
	if _, err := os.Stat(s.unitPath(unit)); err != nil {
		return fmt.Errorf("no unit %s here", unit)
	}
	s.StopService(unit)
	_, err := s.startService(unit)
	return err
}

// logState logs the host's addresses, rules and routes, and the servers' output, for a failed test.
func (s *DynamicSite) logState() {
	for _, args := range [][]string{{"addr"}, {"-4", "rule"}, {"-6", "rule"}, {"-4", "route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"}} {
		out, _ := s.Host.Try(append([]string{"ip"}, args...)...)
		s.t.Logf("host: ip %s:\n%s", strings.Join(args, " "), out)
	}
	s.t.Logf("dnsmasq:\n%s", s.dhcp.output())
	s.t.Logf("radvd:\n%s", s.radvd.output())
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, svc := range s.services {
		s.t.Logf("%s (exited: %t):\n%s", name, svc.d.exited(), svc.d.output())
	}
}

// startDHCP starts dnsmasq in lan, serving br0 only, leasing eth-b (by its MAC) the address lease, with a new
// lease file: it knows of no earlier lease.
func (s *DynamicSite) startDHCP(lease string) {
	s.t.Helper()
	leases := filepath.Join(s.dir, "dnsmasq.leases")
	if err := os.Remove(leases); err != nil && !os.IsNotExist(err) {
		s.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", s.LAN.Name, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--port=0", "--no-hosts", "--no-resolv", "--interface=br0", "--bind-interfaces", "--dhcp-authoritative",
		"--dhcp-leasefile="+leases, "--pid-file="+filepath.Join(s.dir, "dnsmasq.pid"),
		"--dhcp-range=10.2.0.100,10.2.0.199,255.255.255.0,2m", "--dhcp-host="+EthBMAC+","+lease,
		"--dhcp-option=option:router,"+LANRouter, "--log-dhcp", "--log-facility=-")
	s.dhcp = startDaemon(s.t, cmd, "dnsmasq")
	s.lease = lease
	// dnsmasq logs its DHCP range once it listens.
	waitFor(s.t, 10*time.Second, func() bool {
		if s.dhcp.exited() {
			s.t.Fatalf("dnsmasq exited:\n%s", s.dhcp.output())
		}
		return strings.Contains(s.dhcp.output(), "DHCP, IP range")
	}, func() string { return "dnsmasq to listen:\n" + s.dhcp.output() })
}

// startRadvd starts radvd in rb on rb-lan, advertising prefix (autonomous, on-link) every 3-10 s.
func (s *DynamicSite) startRadvd(prefix string) {
	s.t.Helper()
	conf := filepath.Join(s.dir, "radvd.conf")
	text := fmt.Sprintf(`interface rb-lan {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 10;
	prefix %s {
		AdvOnLink on;
		AdvAutonomous on;
		AdvValidLifetime 600;
		AdvPreferredLifetime 300;
	};
};
`, prefix)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", s.RB.Name, "radvd", "--nodaemon", "--config="+conf,
		"--pidfile="+filepath.Join(s.dir, "radvd.pid"), "--logmethod=stderr", "--debug=1")
	s.radvd = startDaemon(s.t, cmd, "radvd")
	s.prefixes = append(s.prefixes, prefix)
}

// MoveLease has the DHCP server lease eth-b addr from now on, forgetting the old lease, and bounces eth-b's
// carrier (its LAN port down for half a second): networkd asks again for its old address when the carrier comes
// back, the authoritative server refuses it, and eth-b takes addr. Without the bounce networkd would only learn of
// the change when the lease runs out (T2). It returns when the carrier went down.
func (s *DynamicSite) MoveLease(addr string) time.Time {
	s.t.Helper()
	s.dhcp.stop()
	s.startDHCP(addr)
	return s.BounceCarrier()
}

// BounceCarrier takes eth-b's carrier away for two seconds (its peer's end, in lan, down and up), and returns
// when it went down. Long enough that networkd sees the loss on a loaded machine too: one that misses it keeps
// the old lease until its rebinding time.
func (s *DynamicSite) BounceCarrier() time.Time {
	s.t.Helper()
	s.LAN.IP("link", "set", "lan-h", "down")
	down := time.Now()
	time.Sleep(2 * time.Second)
	s.LAN.IP("link", "set", "lan-h", "up")
	return down
}

// SwitchPrefix has rb take an address in prefix (a /64, its ::1) and radvd advertise prefix instead of the
// previous one, which rb keeps routing; the host keeps its old address until its lifetime runs out.
func (s *DynamicSite) SwitchPrefix(prefix string) {
	s.t.Helper()
	p := netip.MustParsePrefix(prefix)
	router := p.Addr().Next()
	s.RB.IP("-6", "addr", "add", netip.PrefixFrom(router, p.Bits()).String(), "dev", "rb-lan", "nodad")
	s.radvd.stop()
	s.startRadvd(prefix)
}

// Lease is the address the DHCP server leases eth-b now.
func (s *DynamicSite) Lease() string { return s.lease }

// RouterLinkLocal is rb's link-local address on eth-b's LAN: the router its advertisements name.
func (s *DynamicSite) RouterLinkLocal() string {
	s.t.Helper()
	var ll string
	waitFor(s.t, 5*time.Second, func() bool {
		out := s.RB.IP("-6", "-o", "addr", "show", "dev", "rb-lan", "scope", "link", "-tentative")
		if f := strings.Fields(out); len(f) >= 4 {
			ll, _, _ = strings.Cut(f[3], "/")
		}
		return ll != ""
	}, func() string { return "rb's link-local address on rb-lan" })
	return ll
}

// Addresses returns eth-b's global addresses of family ("-4" or "-6") that are usable now: not tentative, not
// failed duplicate address detection.
func (s *DynamicSite) Addresses(family string) []string {
	s.t.Helper()
	out := s.Host.IP(family, "-o", "addr", "show", "dev", "eth-b", "scope", "global", "-tentative")
	var addrs []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || strings.Contains(line, "dadfailed") {
			continue
		}
		a, _, _ := strings.Cut(f[3], "/")
		addrs = append(addrs, a)
	}
	return addrs
}

// WaitAddress waits up to limit for eth-b to have a usable global address that want accepts, and returns it.
func (s *DynamicSite) WaitAddress(family string, limit time.Duration, what string, want func(addr string) bool) string {
	s.t.Helper()
	var got string
	var last []string
	waitFor(s.t, limit, func() bool {
		last = s.Addresses(family)
		for _, a := range last {
			if want(a) {
				got = a
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("eth-b's %s (has %v)", what, last) })
	return got
}

// WaitLease waits up to limit for eth-b to hold addr, the lease.
func (s *DynamicSite) WaitLease(addr string, limit time.Duration) {
	s.t.Helper()
	s.WaitAddress("-4", limit, "lease "+addr, func(a string) bool { return a == addr })
}

// WaitSLAAC waits up to limit for eth-b to have a usable address in prefix, and returns it.
func (s *DynamicSite) WaitSLAAC(prefix string, limit time.Duration) string {
	s.t.Helper()
	p := netip.MustParsePrefix(prefix)
	return s.WaitAddress("-6", limit, "address in "+prefix, func(a string) bool {
		ip, err := netip.ParseAddr(a)
		return err == nil && p.Contains(ip)
	})
}

// GWInvalid is how many packets ra has dropped as conntrack INVALID (replies of connections it never saw).
func (s *DynamicSite) GWInvalid() uint64 { s.t.Helper(); return s.GW.Counter("inet", "gw", "dropped") }

// GWSpoofed is how many packets ra has dropped from eth-a's side with a source not of eth-a's subnet.
func (s *DynamicSite) GWSpoofed() uint64 { s.t.Helper(); return s.GW.Counter("inet", "gw", "spoofed") }

// Rule is one policy rule of the host's, as the kernel holds it.
type Rule struct {
	Src      string // the from address, without a prefix length for a single address; "" for from all
	Table    int
	Priority int
	Protocol int
}

// Rules returns the host's rules of family (netlink.FAMILY_V4 or FAMILY_V6) at priority.
func (s *DynamicSite) Rules(family, priority int) []Rule {
	s.t.Helper()
	s.mu.Lock()
	if s.handle == nil {
		s.handle = s.Host.Handle()
	}
	h := s.handle
	s.mu.Unlock()
	rules, err := h.RuleList(family)
	if err != nil {
		s.t.Fatalf("list the host's rules: %v", err)
	}
	var out []Rule
	for _, r := range rules {
		if r.Priority != priority {
			continue
		}
		src := ""
		if r.Src != nil {
			ones, bits := r.Src.Mask.Size()
			src = r.Src.String()
			if ones == bits {
				src = r.Src.IP.String()
			}
		}
		out = append(out, Rule{Src: src, Table: r.Table, Priority: r.Priority, Protocol: int(r.Protocol)})
	}
	return out
}

// Eventually polls ok every 50 ms and fails the test, saying what it waited for, when limit passes first.
func Eventually(t T, limit time.Duration, ok func() bool, what func() string) {
	t.Helper()
	waitFor(t, limit, ok, what)
}

// Service is a Type=simple service run from a unit file under a test's root, as systemd would run it.
type Service struct {
	Unit string
	// Argv is the command line run: ExecStart='s, its /etc/ paths moved into the root.
	Argv []string
	d    *daemon
}

func (s *DynamicSite) unitPath(unit string) string {
	return filepath.Join(s.Root, "etc/systemd/system", unit)
}

// StartService starts the unit under the root's etc/systemd/system the way systemd starts a Type=simple service:
// when its ConditionPathExists= paths exist, its ExecStart= (one, without quoting) as a child process with
// systemd's PATH, / as its working directory and nothing on standard input, here in the host's namespace. Paths
// under /etc/ in ExecStart= and the conditions are the root's. The service runs until StopService or the end of
// the test; one that exits by itself before fails the test, as a service that ran into Restart= would be a bug.
func (s *DynamicSite) StartService(unit string) *Service {
	s.t.Helper()
	svc, err := s.startService(unit)
	if err != nil {
		s.t.Fatal(err)
	}
	return svc
}

// startService is StartService, with an error where the test may not be failed at once (the manager's goroutine).
func (s *DynamicSite) startService(unit string) (*Service, error) {
	s.mu.Lock()
	running := s.services[unit]
	s.mu.Unlock()
	if running != nil && !running.d.exited() {
		return nil, fmt.Errorf("%s runs already (pid %d)", unit, running.d.cmd.Process.Pid)
	}
	data, err := os.ReadFile(s.unitPath(unit))
	if err != nil {
		return nil, fmt.Errorf("read %s: %v", unit, err)
	}
	keys := unitKeys(string(data))
	if typ := keys["Type"]; len(typ) > 0 && typ[len(typ)-1] != "simple" {
		return nil, fmt.Errorf("%s is Type=%s; only Type=simple is run here:\n%s", unit, typ[len(typ)-1], data)
	}
	for _, cond := range keys["ConditionPathExists"] {
		neg := strings.HasPrefix(cond, "!")
		p := s.inRoot(strings.TrimPrefix(cond, "!"))
		_, err := os.Stat(p)
		if (err == nil) == neg {
			return nil, fmt.Errorf("%s: ConditionPathExists=%s is not met (%s), so systemd would not start it", unit, cond, p)
		}
	}
	exec1 := keys["ExecStart"]
	if len(exec1) != 1 || strings.ContainsAny(exec1[0], `"'\$%`) {
		return nil, fmt.Errorf("%s: want one ExecStart= without quoting, escapes or specifiers:\n%s", unit, data)
	}
	argv := strings.Fields(strings.TrimLeft(exec1[0], "@-:+!"))
	for i, a := range argv {
		argv[i] = s.inRoot(a)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", s.Host.Name}, argv...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	cmd.Dir = "/"
	d, err := startDaemonErr(s.t, cmd, unit)
	if err != nil {
		return nil, err
	}
	svc := &Service{Unit: unit, Argv: argv, d: d}
	s.mu.Lock()
	s.services[unit] = svc
	s.mu.Unlock()
	s.t.Cleanup(func() {
		if svc.d.exited() && !svc.d.stopped() {
			s.t.Errorf("%s (pid %d) exited by itself: %s\n%s", unit, svc.d.cmd.Process.Pid, svc.d.cmd.ProcessState, svc.d.output())
		}
	})
	return svc, nil
}

// StopService stops the unit's service if it runs, as systemctl stop does: SIGTERM to its processes, SIGKILL to
// those left after 5 s. A service that exited by itself fails the test.
func (s *DynamicSite) StopService(unit string) {
	s.t.Helper()
	s.mu.Lock()
	svc := s.services[unit]
	delete(s.services, unit)
	s.mu.Unlock()
	if svc == nil {
		return
	}
	if svc.d.exited() && !svc.d.stopped() {
		s.t.Errorf("%s (pid %d) exited by itself: %s\n%s", unit, svc.d.cmd.Process.Pid, svc.d.cmd.ProcessState, svc.d.output())
	}
	svc.d.stop()
}

// Running reports whether the service's main process still runs.
func (v *Service) Running() bool { return !v.d.exited() }

// Output is what the service has written to standard output and error.
func (v *Service) Output() string { return v.d.output() }

// inRoot moves a path under /etc/ into the test's root; other arguments stay as they are.
func (s *DynamicSite) inRoot(arg string) string {
	if strings.HasPrefix(arg, "/etc/") {
		return filepath.Join(s.Root, arg)
	}
	return arg
}

// unitKeys returns the values of each key of a unit file, in order, sections merged, comments skipped.
func unitKeys(text string) map[string][]string {
	keys := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if v == "" {
			delete(keys, k) // an empty assignment resets the list
			continue
		}
		keys[k] = append(keys[k], v)
	}
	return keys
}

// UnitArgs returns the arguments of ExecStart= of the unit under the root's etc/systemd/system, after the program
// and any script it runs (the words that do not start with '/').
func (s *DynamicSite) UnitArgs(unit string) []string {
	s.t.Helper()
	data, err := os.ReadFile(s.unitPath(unit))
	if err != nil {
		s.t.Fatalf("read %s: %v", unit, err)
	}
	exec1 := unitKeys(string(data))["ExecStart"]
	if len(exec1) != 1 {
		s.t.Fatalf("%s: want one ExecStart=:\n%s", unit, data)
	}
	var args []string
	for _, a := range strings.Fields(exec1[0]) {
		if !strings.HasPrefix(a, "/") {
			args = append(args, a)
		}
	}
	return args
}

// daemon is a process a test started in the background, with its output kept. It and the processes it started
// are stopped by their own pids, at the latest when the test ends.
type daemon struct {
	cmd      *exec.Cmd
	what     string
	out      *syncBuffer
	done     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	stopDone bool
}

func startDaemon(t T, cmd *exec.Cmd, what string) *daemon {
	t.Helper()
	d, err := startDaemonErr(t, cmd, what)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func startDaemonErr(t T, cmd *exec.Cmd, what string) (*daemon, error) {
	d := &daemon{cmd: cmd, what: what, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", what, err)
	}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(d.stop)
	return d, nil
}

func (d *daemon) output() string {
	if d == nil {
		return ""
	}
	return d.out.String()
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *daemon) stopped() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopDone
}

// stop sends SIGTERM to the process and to every process it started (found through /proc, each by its pid and
// checked by its start time), waits up to 5 s for them to end, and kills those left.
func (d *daemon) stop() {
	d.once.Do(func() {
		d.mu.Lock()
		d.stopDone = true
		d.mu.Unlock()
		var procs []proc
		if !d.exited() {
			procs = descendants(d.cmd.Process.Pid)
			d.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			p.signal(syscall.SIGTERM)
		}
		deadline := time.Now().Add(5 * time.Second)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
		for _, p := range procs {
			for p.alive() && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			p.signal(syscall.SIGKILL)
		}
	})
}

// proc is a process named by its pid and start time, so that a later process with the pid is never signalled.
type proc struct {
	pid   int
	start string
}

func startTime(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 || f[0] == "Z" {
		return ""
	}
	return f[19]
}

func (p proc) alive() bool { return startTime(p.pid) == p.start }

func (p proc) signal(sig syscall.Signal) {
	if p.alive() {
		syscall.Kill(p.pid, sig)
	}
}

// descendants returns the processes pid started, and those they started, from /proc's children lists.
func descendants(pid int) []proc {
	var out []proc
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		sc.Split(bufio.ScanWords)
		for sc.Scan() {
			child, err := strconv.Atoi(sc.Text())
			if err != nil {
				continue
			}
			if st := startTime(child); st != "" {
				out = append(out, descendants(child)...)
				out = append(out, proc{child, st})
			}
		}
	}
	return out
}
