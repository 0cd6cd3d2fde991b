package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/tools/nettest"
)

// Addresses the routed site's host serves without any description naming them. rb routes each to eth-b.
const (
	lbAddr    = "198.51.100.10" // a MetalLB LoadBalancer address: kube-proxy DNATs it to the pod
	vipB      = "198.51.100.20" // a VIP that appears on eth-b at run time (keepalived)
	vipLo     = "198.51.100.21" // a VIP on lo (kube-proxy IPVS, a BGP-announced service address)
	redirAddr = "198.51.100.30" // an address kube-proxy redirects to a local port
	svcPort   = "80"
	kubeMark  = 0x4000 // kube-proxy's masquerade bit
)

// kubeProxyTable is kube-proxy's own nftables table, apart from symroute's: the LoadBalancer address DNAT'd to
// the pod with kube-proxy's bit set on the request, and a redirect of another address to the host's echo port.
// postcount counts the DNAT'd requests that still carry the bit when they leave for the pod, after every
// prerouting chain (symroute's included) ran.
var kubeProxyTable = fmt.Sprintf(`table ip kubeproxy {
	counter mark4000 { }
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %[1]s tcp dport %[2]s meta mark set meta mark | %#[5]x dnat to %[3]s:%[4]s
		ip daddr %[6]s tcp dport %[2]s redirect to :%[4]s
	}
	chain postcount {
		type filter hook postrouting priority srcnat - 1; policy accept;
		oifname "cali1" ip daddr %[3]s tcp dport %[4]s meta mark & %#[5]x == %#[5]x counter name "mark4000"
	}
}
`, lbAddr, svcPort, nettest.PodIP, echoPort, kubeMark, redirAddr)

// lbSite is the routed topology with a Calico-style pod behind kube-proxy's DNAT, the service addresses routed to
// the host, and the LAN client's view of them.
type lbSite struct {
	*site
	routed *nettest.RoutedSite
}

// newLBSite is the routed site with kube-proxy's nftables table loaded and a VIP served on lo.
func newLBSite(t *testing.T) *lbSite {
	t.Helper()
	s := buildLBSite(t)
	file := filepath.Join(t.TempDir(), "kubeproxy.nft")
	if err := os.WriteFile(file, []byte(kubeProxyTable), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Host.Exec("nft", "-f", file)
	s.Host.IP("addr", "add", vipLo+"/32", "dev", "lo")
	s.Host.Serve(t, vipLo+":"+svcPort)
	return s
}

// buildLBSite is the routed site with the pod serving the echo port and the service addresses routed to the
// host, with nothing of kube-proxy's on the host yet.
func buildLBSite(t *testing.T) *lbSite {
	t.Helper()
	s, pod := newRoutedLB(t)
	pod.Serve(t, "0.0.0.0:"+echoPort)
	for _, a := range []string{lbAddr, vipB, vipLo, redirAddr} {
		s.routed.RouteToHost(a)
	}
	// The path back through ra exists and works: what fails below fails on the reply's way, not for want of a route.
	if err := s.Client.Echo(hostA+":"+echoPort, ""); err != nil {
		t.Fatalf("the client cannot reach eth-a's address through ra: %v", err)
	}
	return s
}

// trackDescription describes the routed host: eth-b tracks connections when track is set, with rpFilter on eth-b
// and the extra top-level lines.
func trackDescription(track bool, rpFilter string, topLevel ...string) string {
	return fmt.Sprintf(`version: 1
cni: [kube-proxy, calico]
cluster_cidrs: [10.244.0.0/16, 10.96.0.0/12]
%sinterfaces:
  - name: eth-a
    addresses: [%s/24]
    gateway: 192.168.1.1
    default_route: true
  - name: eth-b
    addresses: [%s/24]
    gateway: %s
    rp_filter: %s
    track_connections: %t
`, strings.Join(append(topLevel, ""), "\n"), hostA, hostB, nettest.RBAddress, rpFilter, track)
}

// flow is one connection the client tries: to addr, expected to work or not.
type flow struct {
	name, addr string
	works      bool
}

func lb(works bool) flow {
	return flow{"LoadBalancer " + lbAddr + " DNAT'd to the pod", lbAddr + ":" + svcPort, works}
}
func viaLo(works bool) flow { return flow{"VIP " + vipLo + " on lo", vipLo + ":" + svcPort, works} }
func viaB(works bool) flow  { return flow{"VIP " + vipB + " on eth-b", vipB + ":" + svcPort, works} }
func redirect(works bool) flow {
	return flow{"redirect of " + redirAddr + " to the host's port " + echoPort, redirAddr + ":" + svcPort, works}
}

// expectFlows has the client try every flow at once (a failing one takes the client's whole timeout) and fails
// the test for each that does not end as expected. It returns how many packets ra dropped meanwhile.
func (s *lbSite) expectFlows(when string, flows ...flow) (gwDrops uint64) {
	s.t.Helper()
	before := s.routed.GWDrops()
	checks := make([]flowCheck, len(flows))
	for i, f := range flows {
		checks[i] = flowCheck{f.name, f.works, func() error { return s.Client.Echo(f.addr, "") }}
	}
	if !checkFlows(s.t, when, checks) {
		s.t.Logf("host rules:\n%s", s.Host.IP("rule"))
		s.t.FailNow()
	}
	return s.routed.GWDrops() - before
}

// finding is one of verify's findings, as -o json prints it.
type finding struct{ Kind, Interface, Message string }

// verifyJSON runs symroute verify -o json and returns its exit status and findings.
func (s *lbSite) verifyJSON(desc string) (int, []finding) {
	s.t.Helper()
	code, out := s.symroute("verify", "-c", desc, "-o", "json")
	var res struct {
		OK       bool      `json:"ok"`
		Findings []finding `json:"findings"`
	}
	// Notes go to standard error, which symroute shares with the JSON here: the object starts at the first '{'.
	if i := strings.IndexByte(out, '{'); i < 0 || json.Unmarshal([]byte(out[i:]), &res) != nil {
		s.t.Fatalf("verify -o json printed no JSON (exit %d):\n%s", code, out)
	}
	if res.OK != (code == 0) {
		s.t.Errorf("verify exited %d with ok=%t:\n%s", code, res.OK, out)
	}
	return code, res.Findings
}

var firewallMark = regexp.MustCompile(`(?m)^FirewallMark=(0x[0-9a-f]+)/(0x[0-9a-f]+)$`)

// trackMark reads the mark and mask symroute gave eth-b from the .network file it wrote.
func (s *lbSite) trackMark() (mark, mask uint64) {
	s.t.Helper()
	data, err := os.ReadFile(filepath.Join(s.Root, "etc/systemd/network/10-symroute-eth-b.network"))
	if err != nil {
		s.t.Fatal(err)
	}
	m := firewallMark.FindStringSubmatch(string(data))
	if m == nil {
		s.t.Fatalf("no FirewallMark= in eth-b's file:\n%s", data)
	}
	mark, _ = strconv.ParseUint(m[1], 0, 32)
	mask, _ = strconv.ParseUint(m[2], 0, 32)
	return mark, mask
}

// TestTrackConnectionsLoadBalancerDNAT: a MetalLB-style LoadBalancer address routed to the host's second NIC and
// DNAT'd by kube-proxy to a pod, a VIP on lo, a VIP added to eth-b at run time and a redirect to a local port.
// Before symroute, and with symroute's source rules alone, every reply leaves by the default route and the
// stateful router ra drops it; with track_connections on eth-b every one leaves by eth-b, kube-proxy's 0x4000
// bit still on the DNAT'd request.
func TestTrackConnectionsLoadBalancerDNAT(t *testing.T) {
	t.Parallel()
	s := newLBSite(t)

	// Before symroute: the VIP on eth-b is up for this check only; it comes back after apply.
	s.Host.IP("addr", "add", vipB+"/32", "dev", "eth-b")
	s.Host.Serve(t, vipB+":"+svcPort)
	if drops := s.expectFlows("before symroute", lb(false), viaLo(false), viaB(false), redirect(false)); drops == 0 {
		t.Fatal("before symroute: nothing failed at ra; the replies did not leave by eth-a")
	}
	if n := s.Host.Counter("ip", "kubeproxy", "mark4000"); n == 0 {
		t.Fatal("before symroute: no DNAT'd request reached the pod carrying kube-proxy's bit; the counter proves nothing")
	}
	s.Host.IP("addr", "del", vipB+"/32", "dev", "eth-b")

	// symroute's source rules and cluster rules alone: the redirect's reply comes from eth-b's own address (the
	// redirect rewrites the destination to it) and its source rule catches it; nothing else's does.
	s.mustSymroute(0, "apply", "-c", s.describe("host.yaml", trackDescription(false, "loose")))
	if drops := s.expectFlows("with source rules alone", lb(false), viaLo(false), redirect(true)); drops == 0 {
		t.Fatal("with source rules alone: nothing failed at ra")
	}

	desc := s.describe("host.yaml", trackDescription(true, "loose"))
	out := s.mustSymroute(0, "apply", "-c", desc)
	if !strings.Contains(out, "create /etc/symroute/90-symroute.nft") {
		t.Errorf("apply did not write the table's file:\n%s", out)
	}
	s.Host.Exec("nft", "list", "table", "inet", "symroute")
	s.mustSymroute(0, "verify", "-c", desc)

	// The VIP appears on eth-b after apply; symroute does not run again.
	s.Host.IP("addr", "add", vipB+"/32", "dev", "eth-b")
	mark, mask := s.trackMark()
	if mask&kubeMark != 0 {
		t.Fatalf("symroute's mask %#x takes kube-proxy's bit %#x although kube-proxy is declared", mask, kubeMark)
	}
	// A request that kept kube-proxy's bit and got symroute's request mark is counted as it is forwarded, before
	// symroute's forward chain (at mangle) clears its bits; as it leaves for the pod they are gone, and kube-proxy's
	// bit is not.
	both := fmt.Sprintf("%#x", mark|kubeMark)
	s.Host.Exec("nft", "add counter ip kubeproxy both; add chain ip kubeproxy fwdcount { type filter hook forward priority -200; policy accept; }; "+
		"add rule ip kubeproxy fwdcount oifname \"cali1\" meta mark & "+fmt.Sprintf("%#x", mask|kubeMark)+" == "+both+" counter name both")
	s.Host.Exec("nft", "add counter ip kubeproxy cleared; add rule ip kubeproxy postcount oifname \"cali1\" meta mark & "+
		fmt.Sprintf("%#x", mask|kubeMark)+" == "+fmt.Sprintf("%#x", kubeMark)+" counter name cleared")
	s.Host.Exec("nft", "reset", "counters", "table", "ip", "kubeproxy")
	// The flows working is the proof (a reply by eth-a dies at ra); ra's counter is not, as it may still count the
	// SYN-ACKs that the pod and the host retransmit for the connections that failed above.
	s.expectFlows("with track_connections", lb(true), viaLo(true), viaB(true), redirect(true))
	if n := s.Host.Counter("ip", "kubeproxy", "mark4000"); n == 0 {
		t.Errorf("no DNAT'd request left for the pod with kube-proxy's bit %#x after symroute's chains ran", kubeMark)
	}
	if n := s.Host.Counter("ip", "kubeproxy", "both"); n == 0 {
		t.Errorf("no DNAT'd request was forwarded with both kube-proxy's bit and symroute's request mark (%s)", both)
	}
	if n := s.Host.Counter("ip", "kubeproxy", "cleared"); n == 0 {
		t.Errorf("no DNAT'd request left for the pod with kube-proxy's bit and symroute's bits cleared")
	}
	s.mustSymroute(0, "verify", "-c", desc)
}

// TestTrackConnectionsStrictRPFilter: under strict rp_filter the LoadBalancer and VIP requests are dropped on
// arrival; track_connections makes rp_filter check them through eth-b's table (src_valid_mark). Turning
// src_valid_mark off by hand drops them again, verify names it, and apply puts it back.
func TestTrackConnectionsStrictRPFilter(t *testing.T) {
	t.Parallel()
	s := newLBSite(t)
	s.Host.Exec("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.eth-b.rp_filter=1")
	rpDrops := func() uint64 { return s.Host.NetStat("TcpExt", "IPReversePathFilter") }

	before := rpDrops()
	s.expectFlows("before apply, strict rp_filter", lb(false), viaLo(false))
	if rpDrops() == before {
		t.Fatal("before apply: rp_filter dropped nothing; the requests failed for another reason")
	}

	desc := s.describe("host.yaml", trackDescription(true, "strict", "rp_filter_all: strict"))
	s.mustSymroute(0, "apply", "-c", desc)
	s.expectFlows("after apply, strict rp_filter", lb(true), viaLo(true))
	if code, findings := s.verifyJSON(desc); code != 0 {
		t.Fatalf("verify after apply exited %d: %v", code, findings)
	}

	s.Host.Exec("sysctl", "-qw", "net.ipv4.conf.eth-b.src_valid_mark=0")
	before = rpDrops()
	s.expectFlows("src_valid_mark off by hand", lb(false), viaLo(false))
	if rpDrops() == before {
		t.Error("with src_valid_mark off: rp_filter dropped nothing")
	}
	code, findings := s.verifyJSON(desc)
	named := false
	for _, f := range findings {
		named = named || (f.Kind == "src_valid_mark" && f.Interface == "eth-b")
	}
	if code != 1 || !named {
		t.Errorf("verify with src_valid_mark off exited %d, want 1 with a src_valid_mark finding on eth-b: %+v", code, findings)
	}

	s.mustSymroute(0, "apply", "-c", desc)
	if v := strings.TrimSpace(s.Host.Exec("sysctl", "-n", "net.ipv4.conf.eth-b.src_valid_mark")); v != "1" {
		t.Errorf("apply left src_valid_mark at %s", v)
	}
	s.expectFlows("after apply repaired src_valid_mark", lb(true), viaLo(true))
	if code, findings := s.verifyJSON(desc); code != 0 {
		t.Errorf("verify after the repair exited %d: %v", code, findings)
	}
}

// TestTrackConnectionsRebootFromFilesAndRemove: after apply, networkd stopped and symroute's table, rules, routes
// and sysctl undone (the DNAT'd flow fails again); then the boot's own steps on the files symroute wrote, without
// symroute: the connmark unit's ExecStart, found through its sysinit.target.wants link, systemd-sysctl on the
// sysctl.d file, a fresh networkd. The flow works and verify passes. remove --all then takes the table and the
// mark rules away.
func TestTrackConnectionsRebootFromFilesAndRemove(t *testing.T) {
	t.Parallel()
	s := newLBSite(t)
	desc := s.describe("host.yaml", trackDescription(true, "loose"))
	s.mustSymroute(0, "apply", "-c", desc)
	s.expectFlows("after apply", lb(true))

	s.Networkd.Stop()
	s.Host.Exec("nft", "delete", "table", "inet", "symroute")
	for _, family := range []string{"-4", "-6"} {
		for _, pref := range symroutePriorities(s.Host.IP(family, "rule")) {
			s.Host.IP(family, "rule", "del", "pref", pref)
		}
		for _, table := range []string{"1000000", "1000001"} {
			s.Host.Try("ip", family, "route", "flush", "table", table)
		}
	}
	s.Host.Exec("sysctl", "-qw", "net.ipv4.conf.eth-b.src_valid_mark=0")
	s.expectFlows("with symroute's table, rules and sysctl gone", lb(false))
	// A booting host's links are down and without addresses: networkd brings them up and gives them theirs.
	for _, l := range []string{"eth-a", "eth-b"} {
		s.Host.IP("link", "set", l, "down")
		s.Host.IP("addr", "flush", "dev", l)
	}

	// The boot: sysinit.target pulls the unit in through its wants link, before network-pre.target.
	link := filepath.Join(s.Root, "etc/systemd/system/sysinit.target.wants/symroute-connmark.service")
	target, err := os.Readlink(link)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join("/etc/systemd/system/sysinit.target.wants", target)
	}
	argv := unitExecStart(t, filepath.Join(s.Root, target))
	for i, arg := range argv {
		if strings.HasPrefix(arg, "/etc/") {
			argv[i] = filepath.Join(s.Root, arg)
		}
	}
	s.Host.Exec(argv...)
	s.Host.Exec("/lib/systemd/systemd-sysctl", filepath.Join(s.Root, "etc/sysctl.d/90-symroute.conf"))
	s.Networkd = nettest.StartNetworkd(t, s.Host, s.Bus, s.Root)
	s.Networkd.WaitConfigured(t, s.Host, 20*time.Second, "lo", "eth-a", "eth-b")
	s.expectFlows("after the reboot, without symroute", lb(true))
	s.mustSymroute(0, "verify", "-c", desc)

	out := s.mustSymroute(0, "remove", "--all")
	if _, err := s.Host.Try("nft", "list", "table", "inet", "symroute"); err == nil {
		t.Errorf("remove --all left table inet symroute:\n%s", out)
	}
	for _, family := range []string{"-4", "-6"} {
		if rules := s.Host.IP(family, "rule"); strings.Contains(rules, "fwmark") || len(symroutePriorities(rules)) != 0 {
			t.Errorf("remove --all left rules (%s):\n%s", family, rules)
		}
	}
	if v := strings.TrimSpace(s.Host.Exec("sysctl", "-n", "net.ipv4.conf.eth-b.src_valid_mark")); v != "0" {
		t.Errorf("remove --all left src_valid_mark at %s, not its value from before symroute (0)", v)
	}
	for _, f := range []string{"etc/systemd/system/symroute-connmark.service", strings.TrimPrefix(link, s.Root+"/"), "etc/symroute/90-symroute.nft"} {
		if _, err := os.Lstat(filepath.Join(s.Root, f)); err == nil {
			t.Errorf("remove --all left %s", f)
		}
	}
}

// symroutePriorities returns the priorities of the rules in `ip rule` output that fall in symroute's default
// priority_range, once per rule.
func symroutePriorities(rules string) []string {
	var out []string
	for _, line := range strings.Split(rules, "\n") {
		pref, _, ok := strings.Cut(line, ":")
		if n, err := strconv.Atoi(pref); ok && err == nil && n >= 20000 && n <= 29999 {
			out = append(out, pref)
		}
	}
	return out
}

// unitExecStart returns the command line of a oneshot unit's single ExecStart=, split as systemd splits one
// without quotes.
func unitExecStart(t *testing.T, unit string) []string {
	t.Helper()
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	var argv []string
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			if argv != nil || strings.ContainsAny(v, `"'\`) {
				t.Fatalf("%s: want one ExecStart= without quoting:\n%s", unit, data)
			}
			argv = strings.Fields(v)
		}
	}
	if len(argv) == 0 {
		t.Fatalf("%s has no ExecStart=:\n%s", unit, data)
	}
	return argv
}

// flowCheck is one connection a scenario expects to work, or to fail.
type flowCheck struct {
	name  string
	works bool
	run   func() error
}

// checkFlows makes every connection at once and reports each that does not do what it should; it says whether
// all did.
func checkFlows(t *testing.T, when string, flows []flowCheck) bool {
	t.Helper()
	errs := make([]error, len(flows))
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f.run() }()
	}
	wg.Wait()
	ok := true
	for i, f := range flows {
		switch {
		case f.works && errs[i] != nil:
			t.Errorf("%s: %s fails: %v", when, f.name, errs[i])
			ok = false
		case !f.works && errs[i] == nil:
			t.Errorf("%s: %s works, but should fail; the scenario proves nothing", when, f.name)
			ok = false
		}
	}
	return ok
}
