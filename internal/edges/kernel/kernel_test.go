package kernel

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/routing"
	_ "github.com/symroute/symroute/internal/tools/golden"
	"github.com/symroute/symroute/internal/tools/nettest"
	"github.com/symroute/symroute/internal/tools/testenv"
)

// emptyNamespace makes a throwaway network namespace, deleted when the test ends, and runs ip in it.
func emptyNamespace(t *testing.T, role string) (name string, ip func(args ...string)) {
	t.Helper()
	testenv.Root(t, "to create a network namespace")
	testenv.Program(t, "ip", "iproute2")
	name = "symroute-" + role + "-" + nettest.RunID(t)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name, func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// namespace makes a throwaway network namespace with a veth and a few tables, and a Reader into it.
func namespace(t *testing.T) (*Reader, func(args ...string)) {
	t.Helper()
	name, ip := emptyNamespace(t, "kernel")
	ip("link", "add", "eth-a", "type", "veth", "peer", "name", "peer-a")
	ip("link", "set", "eth-a", "up")
	ip("link", "set", "peer-a", "up")
	ip("addr", "add", "192.168.1.10/24", "dev", "eth-a")
	ip("addr", "add", "2001:db8::10/64", "dev", "eth-a", "nodad")
	ip("route", "add", "default", "via", "192.168.1.1", "table", "1000000")
	ip("route", "add", "192.168.1.0/24", "dev", "eth-a", "table", "1000000")
	ip("-6", "route", "add", "default", "via", "2001:db8::1", "table", "1000000")
	ip("route", "add", "10.99.0.0/16", "via", "192.168.1.1", "table", "77")
	ip("-6", "route", "add", "2001:db8:9::/64", "dev", "eth-a", "table", "1000009") // a table of IPv6 routes only
	ip("rule", "add", "pref", "20010", "from", "192.168.1.10", "lookup", "1000000", "proto", "static")
	ip("-6", "rule", "add", "pref", "20010", "from", "2001:db8::10", "lookup", "1000000")
	ip("rule", "add", "pref", "9", "fwmark", "0x200/0xf00", "lookup", "2004")
	ip("rule", "add", "pref", "11", "from", "10.66.0.0/16", "blackhole")
	ip("rule", "add", "pref", "12", "from", "10.67.0.0/16", "goto", "20010")
	ip("rule", "add", "pref", "13", "oif", "eth-a", "lookup", "77")
	ip("rule", "add", "pref", "17", "not", "from", "10.68.0.0/16", "ipproto", "tcp", "dport", "80", "lookup", "78")
	ip("rule", "add", "pref", "18", "from", "10.69.0.0/16", "lookup", "79", "suppress_prefixlength", "0")
	ip("rule", "add", "pref", "14", "fwmark", "0x1000/0x3000", "iif", "eth-a", "lookup", "main", "proto", "static")
	ip("rule", "add", "pref", "15", "fwmark", "0x2000/0x3000", "lookup", "1000000", "proto", "static")
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	r, err := NewReader(h)
	if err != nil {
		t.Fatal(err)
	}
	return r, ip
}

// TestRoutesByTable: a table's routes, both families, as the kernel filters them; a table that does not exist
// is empty, not an error, and so is a table's family it has no route in; and the same answers from a kernel that
// refuses strict checking, where the dump covers every table and the filter runs in user space. This kernel
// takes strict checking, and it is off again after each dump: the rule dump fails under it.
func TestRoutesByTable(t *testing.T) {
	r, _ := namespace(t)
	for _, noStrict := range []bool{false, true} {
		r.noStrictCheck = noStrict
		routes, err := r.Routes(1000000)
		if err != nil {
			t.Fatal(err)
		}
		if r.StrictCheck() == noStrict {
			t.Fatalf("strict checking %v, want %v", r.StrictCheck(), !noStrict)
		}
		if got := routeList(routes); got != "invalid Prefix via 192.168.1.1; 192.168.1.0/24 via invalid IP; invalid Prefix via 2001:db8::1" {
			t.Errorf("strict=%v: routes of table 1000000: %v", !noStrict, got)
		}
		if routes, err := r.Routes(424242); err != nil || len(routes) != 0 {
			t.Errorf("strict=%v: a missing table: %v %v", !noStrict, routes, err)
		}
		if routes, err := r.Routes(1000009); err != nil || routeList(routes) != "2001:db8:9::/64 via invalid IP" {
			t.Errorf("strict=%v: a table of IPv6 routes only: %v %v", !noStrict, routeList(routes), err)
		}
		if rules, err := r.Rules(); err != nil || len(rules) == 0 {
			t.Errorf("strict=%v: rules after a route dump: %d, %v", !noStrict, len(rules), err)
		}
	}
}

func routeList(routes []routing.Route) string {
	var out []string
	for _, rt := range routes {
		out = append(out, rt.Destination.String()+" via "+rt.Gateway.String())
	}
	return strings.Join(out, "; ")
}

// TestRules reads every rule of both families with its protocol and whether it matches on more than addresses.
func TestRules(t *testing.T) {
	r, _ := namespace(t)
	rules, err := r.Rules()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]routing.Rule{}
	for _, rule := range rules {
		found[fmt.Sprintf("%s family %d", rule.From, rule.Family)] = rule
		if rule.Priority == 9 && (rule.Narrowed || rule.Mark != 0x200 || rule.Mask != 0xf00 || rule.Table != 2004) {
			t.Errorf("the fwmark rule: %+v", rule)
		}
		if rule.Priority == 13 && !rule.Narrowed {
			t.Errorf("the oif rule does not read as narrowed beyond what symroute selects on: %+v", rule)
		}
		if rule.Priority == 14 && (rule.Narrowed || rule.Iif != "eth-a" || rule.Mark != 0x1000 || rule.Mask != 0x3000 || rule.Table != 254) {
			t.Errorf("the fwmark and iif rule: %+v", rule)
		}
		// Shown whole, as ip rule writes it: nothing a rule selects on or does is left out.
		want := map[uint32]string{
			11: "from 10.66.0.0/16 no lookup (blackhole, unreachable, prohibit or nop)",
			12: "from 10.67.0.0/16 goto 20010",
			13: "from all oif eth-a lookup 77",
			17: "not from 10.68.0.0/16 ipproto 6 dport 80 lookup 78",
			18: "from 10.69.0.0/16 lookup 79 suppress_prefixlength 0",
		}[rule.Priority]
		if got := rule.Selector() + " " + rule.Does(); want != "" && rule.Family == netlink.FAMILY_V4 && got != want {
			t.Errorf("rule %d reads %q, want %q", rule.Priority, got, want)
		}
	}
	v4 := found[fmt.Sprintf("%s family %d", netip.MustParsePrefix("192.168.1.10/32"), netlink.FAMILY_V4)]
	if v4.Priority != 20010 || v4.Table != 1000000 || v4.Protocol != 4 || v4.Narrowed || v4.Action != routing.ActionLookup {
		t.Errorf("IPv4 source rule: %+v", v4)
	}
	for _, from := range []string{"10.66.0.0/16", "10.67.0.0/16"} {
		if r := found[fmt.Sprintf("%s family %d", netip.MustParsePrefix(from), netlink.FAMILY_V4)]; r.Priority == 0 || r.Action == routing.ActionLookup {
			t.Errorf("a blackhole or goto rule reads as a lookup: %+v", r)
		}
	}
	v6 := found[fmt.Sprintf("%s family %d", netip.MustParsePrefix("2001:db8::10/128"), netlink.FAMILY_V6)]
	if v6.Priority != 20010 || v6.Table != 1000000 {
		t.Errorf("IPv6 source rule: %+v (rules %v)", v6, rules)
	}
}

// TestRouteGetAndLinks: route lookups go through the rules, and links and addresses are named.
func TestRouteGetAndLinks(t *testing.T) {
	r, _ := namespace(t)
	index, ok, err := r.LinkIndex("eth-a")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	ans, err := r.RouteGet(netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("198.51.100.1"), 0)
	if err != nil || ans != (routing.Answer{LinkIndex: index, Table: 1000000, Gateway: netip.MustParseAddr("192.168.1.1")}) {
		t.Errorf("route get: %+v %v", ans, err)
	}
	// A marked lookup from no address takes the mark rule, and an unmarked one does not.
	if ans, err := r.RouteGet(netip.Addr{}, netip.MustParseAddr("198.51.100.1"), 0x2000); err != nil || ans.Table != 1000000 {
		t.Errorf("marked lookup: %+v, %v", ans, err)
	}
	if ans, err := r.RouteGet(netip.Addr{}, netip.MustParseAddr("10.99.0.1"), 0); err == nil && ans.Table == 1000000 {
		t.Errorf("unmarked lookup took the mark rule: %+v", ans)
	}
	ans, err = r.RouteGet(netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8:ffff::1"), 0)
	if err != nil || ans != (routing.Answer{LinkIndex: index, Table: 1000000, Gateway: netip.MustParseAddr("2001:db8::1")}) {
		t.Errorf("IPv6 route get: %+v %v", ans, err)
	}
	// A lookup the kernel refuses (the source is no address of this host) is an error, not an empty answer.
	if ans, err := r.RouteGet(netip.MustParseAddr("192.168.1.99"), netip.MustParseAddr("198.51.100.1"), 0); err == nil {
		t.Errorf("route get without a route: %+v", ans)
	}
	if name, err := r.LinkName(index); err != nil || name != "eth-a" {
		t.Errorf("link %d: %q %v", index, name, err)
	}
	if _, ok, err := r.LinkIndex("no-such"); ok || err != nil {
		t.Errorf("a missing link: %v %v", ok, err)
	}
	addrs, err := r.Addresses(index)
	if err != nil {
		t.Fatal(err)
	}
	var sawBroadcast bool
	for _, a := range addrs {
		if a.Prefix.String() == "192.168.1.10/24" {
			sawBroadcast = a.Broadcast.IsValid() // "ip addr add" without brd sets none
		}
	}
	if sawBroadcast {
		t.Errorf("an address added without brd reads with a broadcast: %+v", addrs)
	}
	// eth-a's routes in every table (its subnet in main and 1000000, the defaults of 1000000, table 77's), and
	// the same from a kernel that refuses strict checking, filtered in user space.
	for _, noStrict := range []bool{false, true} {
		r.noStrictCheck = noStrict
		on, err := r.RoutesOn(index)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, rt := range on {
			got = append(got, fmt.Sprintf("%d:%v", rt.Table, rt.Destination))
		}
		slices.Sort(got)
		if want := "1000000:192.168.1.0/24 1000000:invalid Prefix 1000000:invalid Prefix 1000009:2001:db8:9::/64 254:192.168.1.0/24 254:2001:db8::/64 254:fe80::/64 77:10.99.0.0/16"; strings.Join(got, " ") != want {
			t.Errorf("strict=%v: routes on eth-a: %v\nwant %s", !noStrict, got, want)
		}
	}
}

// TestDeleteRuleHitsTheFirstMatch pins the kernel behaviour the engine guards against: a delete names family,
// priority, addresses, table, protocol and action, and the kernel deletes the first rule matching those, though
// it also selects on an input interface. The plain rule is deleted only once it is the first.
func TestDeleteRuleHitsTheFirstMatch(t *testing.T) {
	r, ip := namespace(t)
	ip("rule", "add", "pref", "20020", "from", "10.0.0.1", "iif", "eth-a", "lookup", "1000001", "proto", "static")
	ip("rule", "add", "pref", "20020", "from", "10.0.0.1", "lookup", "1000001", "proto", "static")
	at20020 := func() []routing.Rule {
		rules, err := r.Rules()
		if err != nil {
			t.Fatal(err)
		}
		var out []routing.Rule
		for _, rule := range rules {
			if rule.Priority == 20020 {
				out = append(out, rule)
			}
		}
		return out
	}
	rules := at20020()
	if len(rules) != 2 || rules[0].Iif != "eth-a" || rules[1].Iif != "" {
		t.Fatalf("rules at 20020, in the kernel's order: %+v", rules)
	}
	if err := r.DeleteRule(rules[1]); err != nil {
		t.Fatal(err)
	}
	if left := at20020(); len(left) != 1 || left[0].Iif != "" {
		t.Fatalf("the delete of the plain rule did not hit the narrowed one first: %+v", left)
	}
	if err := r.DeleteRule(rules[1]); err != nil {
		t.Fatal(err)
	}
	if left := at20020(); len(left) != 0 {
		t.Fatalf("left: %+v", left)
	}
}

// TestDeleteTakesPredictsTheKernel holds ownership.DeleteTakes, which the engine trusts to know which rule a
// delete takes, to the kernel's own choice: for source rules and mark rules, with an input interface on the
// first rule or on neither, the rule DeleteTakes names first is the one that goes.
func TestDeleteTakesPredictsTheKernel(t *testing.T) {
	for _, c := range []struct {
		name   string
		rules  [][]string
		target int
	}{
		{"a narrower source rule first", [][]string{{"from", "10.0.0.1", "iif", "eth-a"}, {"from", "10.0.0.1"}}, 1},
		{"a narrower mark rule first", [][]string{{"fwmark", "0x1000/0x3000", "iif", "eth-a"}, {"fwmark", "0x1000/0x3000"}}, 1},
		{"another mark first", [][]string{{"fwmark", "0x2000/0x3000"}, {"fwmark", "0x1000/0x3000"}}, 1},
		{"the mark rule with an interface, behind a plain one", [][]string{{"fwmark", "0x1000/0x3000"}, {"fwmark", "0x1000/0x3000", "iif", "eth-a"}}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, ip := namespace(t)
			for _, sel := range c.rules {
				ip(append(append([]string{"rule", "add", "pref", "20002"}, sel...), "lookup", "1000001", "proto", "static")...)
			}
			at := func() []routing.Rule {
				rules, err := r.Rules()
				if err != nil {
					t.Fatal(err)
				}
				return slices.DeleteFunc(rules, func(rule routing.Rule) bool { return rule.Priority != 20002 })
			}
			before := at()
			if len(before) != len(c.rules) {
				t.Fatalf("rules: %+v", before)
			}
			ours := ownership.RuleOf(before[c.target])
			predicted := slices.IndexFunc(before, func(kr routing.Rule) bool { return ownership.DeleteTakes(kr, ours) })
			if err := r.DeleteRule(before[c.target]); err != nil {
				t.Fatal(err)
			}
			after := at()
			gone := -1
			for i, b := range before {
				if !slices.Contains(after, b) {
					gone = i
				}
			}
			if len(after) != len(before)-1 || gone != predicted {
				t.Errorf("the kernel deleted rule %d, DeleteTakes predicted %d; before %+v", gone, predicted, before)
			}
		})
	}
}

// TestLinkFacts reads what networkd's [Match] sees: a veth in another namespace (kind, MAC, no permanent MAC,
// the driver unknown there), and lo in the test's own namespace, read only, where ethtool says it has no driver.
func TestLinkFacts(t *testing.T) {
	r, _ := namespace(t)
	l, ok, err := r.LinkFacts("eth-a")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if !l.Live || l.Kind != "veth" || l.Type != "ether" || len(l.MAC) != 6 || l.PermanentMAC != nil || l.DriverKnown {
		t.Errorf("eth-a: %+v", l)
	}
	if _, ok, err := r.LinkFacts("no-such"); ok || err != nil {
		t.Errorf("a missing link: %v %v", ok, err)
	}
	own, err := NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	lo, ok, err := own.LinkFacts("lo")
	if err != nil || !ok || lo.Type != "loopback" || lo.Kind != "" || !lo.DriverKnown || lo.Driver != "" {
		t.Errorf("lo: %+v %v %v", lo, ok, err)
	}
}

// TestAddressLifetimesAndLinks: an address added with a lifetime (as a DHCP client adds its lease) reads as
// dynamic with at most that lifetime left, a permanent one as neither; Links names every link with its state.
func TestAddressLifetimesAndLinks(t *testing.T) {
	r, ip := namespace(t)
	ip("addr", "add", "192.168.1.20/24", "dev", "eth-a", "valid_lft", "300", "preferred_lft", "300")
	index, _, err := r.LinkIndex("eth-a")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := r.Addresses(index)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]routing.Address{}
	for _, a := range addrs {
		got[a.Prefix.String()] = a
	}
	if a := got["192.168.1.20/24"]; !a.Dynamic || a.ValidSeconds == 0 || a.ValidSeconds > 300 {
		t.Errorf("the leased address reads %+v, want dynamic with at most 300 s left", a)
	}
	if a := got["192.168.1.10/24"]; a.Dynamic || a.ValidSeconds != 0 {
		t.Errorf("the permanent address reads %+v", a)
	}
	links, err := r.Links()
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, l := range links {
		states[l.Name] = l.OperState
		if l.Name == "lo" && !l.Loopback {
			t.Errorf("lo is not a loopback: %+v", l)
		}
	}
	if states["eth-a"] != "up" || states["lo"] == "" || len(links) != 3 {
		t.Errorf("links: %v", states)
	}
}

// TestBlockedRoutesAreRoutes: a table's blackhole and unreachable routes are read in both families, marked
// blocked, and the kernel's IPv6 local bookkeeping is not.
func TestBlockedRoutesAreRoutes(t *testing.T) {
	r, ip := namespace(t)
	ip("route", "add", "blackhole", "10.98.0.0/16", "table", "88")
	ip("-6", "route", "add", "unreachable", "2001:db8:98::/48", "table", "88")
	ip("-6", "route", "add", "2001:db8:97::/48", "via", "2001:db8::1", "table", "88")
	routes, err := r.Routes(88)
	if err != nil {
		t.Fatal(err)
	}
	blocked := 0
	for _, rt := range routes {
		if rt.Blocked {
			blocked++
		}
	}
	if len(routes) != 3 || blocked != 2 {
		t.Errorf("table 88: %d routes, %d blocked, want 3 and 2: %s", len(routes), blocked, routeList(routes))
	}
}
