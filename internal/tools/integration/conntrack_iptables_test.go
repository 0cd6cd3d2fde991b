package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/symroute/symroute/internal/tools/nettest"
	"github.com/symroute/symroute/internal/tools/testenv"
)

// kubeProxyIptables is kube-proxy's iptables mode, as iptables-restore reads it: the LoadBalancer address DNAT'd
// to the pod through KUBE-SERVICES and an endpoint chain that jumps to KUBE-MARK-MASQ (the --or-mark of
// kube-proxy's bit) first, kube-proxy's forward accept of marked and established traffic, and a rule in mangle's
// POSTROUTING, commented mark4000, that counts the DNAT'd requests still carrying the bit when they leave for the
// pod. nat's rules see only a connection's first packet, so the bit is on the SYN alone, as with kube-proxy.
var kubeProxyIptables = fmt.Sprintf(`*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SEP-POD - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d %[1]s/32 -p tcp -m tcp --dport %[2]s -j KUBE-SEP-POD
-A KUBE-MARK-MASQ -j MARK --or-mark %#[5]x
-A KUBE-SEP-POD -j KUBE-MARK-MASQ
-A KUBE-SEP-POD -p tcp -m tcp -j DNAT --to-destination %[3]s:%[4]s
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -d %[3]s/32 -o cali1 -p tcp -m tcp --dport %[4]s -m mark --mark %#[5]x/%#[5]x -m comment --comment mark4000
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FORWARD -m mark --mark %#[5]x/%#[5]x -j ACCEPT
-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
`, lbAddr, svcPort, nettest.PodIP, echoPort, kubeMark)

// iptables is one iptables variant in the host's namespace: iptables-legacy (x_tables) or iptables-nft.
type iptables struct {
	s             *lbSite
	save, restore string // the variant's iptables-save and iptables-restore
	nft           bool   // iptables-nft: its tables are nftables tables, ip nat, ip filter, ip mangle
	dir           string
}

// newIptables finds the variant's programs (Debian's iptables package ships both variants), or skips or fails
// the test as testenv decides, before the site is built for it.
func newIptables(t *testing.T, variant string, build func(*testing.T) *lbSite) *iptables {
	t.Helper()
	cmd := "iptables-" + variant
	save := testenv.Program(t, cmd+"-save", "iptables")
	restore := testenv.Program(t, cmd+"-restore", "iptables")
	return &iptables{s: build(t), save: save, restore: restore, nft: variant == "nft", dir: t.TempDir()}
}

// load runs the variant's iptables-restore on rules in the host's namespace: each table the rules name is
// flushed and written whole, as kube-proxy's full resync does.
func (x *iptables) load(rules string) {
	x.s.t.Helper()
	file := filepath.Join(x.dir, "rules")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		x.s.t.Fatal(err)
	}
	x.s.Host.Exec(x.run(x.restore, file)...)
}

// run is args with the xtables lock in the test's own directory: iptables takes it in /run by default, a file
// on the machine the test must not create.
func (x *iptables) run(args ...string) []string {
	return append([]string{"env", "XTABLES_LOCKFILE=" + filepath.Join(x.dir, "xtables.lock")}, args...)
}

// rawSave is the variant's iptables-save of the host's namespace, as printed.
func (x *iptables) rawSave(args ...string) string {
	x.s.t.Helper()
	return x.s.Host.Exec(x.run(append([]string{x.save}, args...)...)...)
}

var (
	saveComment  = regexp.MustCompile(`(?m)^#.*\n`)
	chainCounter = regexp.MustCompile(`(?m)^(:\S+ \S+) \[\d+:\d+\]$`)
	mark4000     = regexp.MustCompile(`(?m)^\[(\d+):\d+\] -A POSTROUTING .*--comment mark4000$`)
)

// ruleset is the variant's iptables-save with what changes as time and packets pass taken out: the "# Generated
// ... on <date>" lines, and the built-in chains' packet and byte counts (iptables-legacy-save prints them even
// without -c). Every table, chain, policy and rule is left as printed.
func (x *iptables) ruleset() string {
	x.s.t.Helper()
	return chainCounter.ReplaceAllString(saveComment.ReplaceAllString(x.rawSave(), ""), "$1 [-:-]")
}

// marked is how many DNAT'd requests left for the pod with kube-proxy's bit, by the mark4000 rule's counter.
func (x *iptables) marked() uint64 {
	x.s.t.Helper()
	out := x.rawSave("-c", "-t", "mangle")
	m := mark4000.FindStringSubmatch(out)
	if m == nil {
		x.s.t.Fatalf("no mark4000 rule in mangle:\n%s", out)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

const symrouteTable = "inet symroute"

// theirTables are the nftables tables iptables-nft keeps kube-proxy's rules in.
var theirTables = []string{"ip nat", "ip filter", "ip mangle"}

var tableHandle = regexp.MustCompile(`(?m)^table (\S+ \S+) \{ # handle (\d+)`)

// tables returns nftables' handle of each table in the host's namespace by family and name, and fails the test
// unless symroute's table is there, beside iptables-nft's (with iptables-nft) or without them (with iptables-legacy,
// whose tables nftables never sees). A table deleted and made again gets a new handle.
func (x *iptables) tables() map[string]string {
	x.s.t.Helper()
	out := x.s.Host.Exec("nft", "-a", "list", "ruleset")
	handles := map[string]string{}
	for _, m := range tableHandle.FindAllStringSubmatch(out, -1) {
		handles[m[1]] = m[2]
	}
	if handles[symrouteTable] == "" {
		x.s.t.Errorf("no table %s in nft list ruleset:\n%s", symrouteTable, out)
	}
	for _, table := range theirTables {
		if present := handles[table] != ""; present != x.nft {
			x.s.t.Errorf("table %s in nftables: %t, want %t (%s):\n%s", table, present, x.nft, x.save, out)
		}
	}
	return handles
}

// TestTrackConnectionsKubeProxyIptables: the LoadBalancer DNAT and kube-proxy's bit of
// TestTrackConnectionsLoadBalancerDNAT done by kube-proxy's iptables mode instead, with iptables-legacy
// (x_tables, which nft never sees) and with iptables-nft (nftables tables ip nat, ip filter and ip mangle beside
// symroute's inet symroute). In each the flow fails before apply and works after it with the bit kept; their
// ruleset is the same before apply, after it and after remove --all; and their full resync (iptables-restore of
// everything, which iptables-nft does by rewriting its tables) leaves symroute's table as it was and verify
// passing.
func TestTrackConnectionsKubeProxyIptables(t *testing.T) {
	t.Parallel()
	for _, variant := range []string{"legacy", "nft"} {
		t.Run(variant, func(t *testing.T) {
			t.Parallel()
			x := newIptables(t, variant, buildLBSite)
			s := x.s
			x.load(kubeProxyIptables)
			theirs := x.ruleset()
			full := x.rawSave()

			if drops := s.expectFlows("before symroute", lb(false)); drops == 0 {
				t.Fatal("before symroute: nothing failed at ra; the reply did not leave by eth-a")
			}
			if x.marked() == 0 {
				t.Fatal("before symroute: no DNAT'd request reached the pod carrying kube-proxy's bit; the counter proves nothing")
			}

			desc := s.describe("host.yaml", trackDescription(true, "loose"))
			s.mustSymroute(0, "apply", "-c", desc)
			if got := x.ruleset(); got != theirs {
				t.Errorf("apply changed %s's ruleset:\nbefore:\n%s\nafter:\n%s", x.save, theirs, got)
			}
			before := x.marked()
			s.expectFlows("with track_connections", lb(true))
			if x.marked() == before {
				t.Errorf("no DNAT'd request left for the pod with kube-proxy's bit %#x after symroute's chains ran", kubeMark)
			}
			ours := s.Host.Exec("nft", "list", "table", "inet", "symroute")
			tables := x.tables()

			// kube-proxy's resync: the whole saved ruleset restored, each of its tables flushed and written again.
			x.load(full)
			if got := x.ruleset(); got != theirs {
				t.Errorf("restoring %s's own save changed it:\nbefore:\n%s\nafter:\n%s", x.save, theirs, got)
			}
			if got := s.Host.Exec("nft", "list", "table", "inet", "symroute"); got != ours {
				t.Errorf("their resync changed table inet symroute:\nbefore:\n%s\nafter:\n%s", ours, got)
			}
			after := x.tables()
			if after[symrouteTable] != tables[symrouteTable] {
				t.Errorf("table inet symroute was made again during their resync: handle %s, then %s", tables[symrouteTable], after[symrouteTable])
			}
			for _, table := range theirTables {
				if x.nft && after[table] == tables[table] {
					t.Errorf("iptables-nft's resync left table %s (handle %s) as it was; it proves nothing", table, after[table])
				}
			}
			s.mustSymroute(0, "verify", "-c", desc)
			s.expectFlows("after their resync", lb(true))

			s.mustSymroute(0, "remove", "--all")
			if got := x.ruleset(); got != theirs {
				t.Errorf("remove --all changed %s's ruleset:\nbefore:\n%s\nafter:\n%s", x.save, theirs, got)
			}
		})
	}
}
