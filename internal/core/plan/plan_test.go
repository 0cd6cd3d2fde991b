package plan

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/description"
	_ "github.com/symroute/symroute/internal/tools/golden"
)

func mustPlan(t *testing.T, src string) *Plan {
	t.Helper()
	h, rep := description.Parse([]byte(src))
	if rep.HasErrors(false) {
		t.Fatalf("parse: %+v", rep.Entries)
	}
	p, rep := Build(h)
	if rep.HasErrors(false) {
		t.Fatalf("plan: %+v", rep.Entries)
	}
	return p
}

// description returns a description of n interfaces; pins[i] pins interface i's table (and priority) when set.
func hostOf(n int, pins map[int]uint32) string {
	var b strings.Builder
	b.WriteString("version: 1\ncluster_cidrs: [10.244.0.0/16]\ninterfaces:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: eth%d\n    addresses: [10.%d.%d.1/24]\n    gateway: 10.%d.%d.254\n", i, i/250, i%250, i/250, i%250)
		if v, ok := pins[i]; ok {
			fmt.Fprintf(&b, "    table: %d\n    priority: %d\n", v, 29000+i)
		}
	}
	return b.String()
}

// TestAppendingNeverRenumbers: for random descriptions (some values pinned), appending interfaces leaves every
// existing interface's table and priority as they were.
func TestAppendingNeverRenumbers(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := range 200 {
		n, extra := 1+rng.Intn(20), 1+rng.Intn(10)
		pins := map[int]uint32{}
		for i := range n + extra {
			if rng.Intn(4) == 0 {
				pins[i] = 5000000 + uint32(i)
			}
		}
		before := mustPlan(t, hostOf(n, pins))
		after := mustPlan(t, hostOf(n+extra, pins))
		for i, b := range before.Interfaces {
			a := after.Interfaces[i]
			if a.Table != b.Table || a.Priority != b.Priority {
				t.Fatalf("trial %d: appending %d interfaces to %d moved eth%d from table %d prio %d to table %d prio %d",
					trial, extra, n, i, b.Table, b.Priority, a.Table, a.Priority)
			}
		}
	}
}

func TestClusterRulesPrecedeSourceRules(t *testing.T) {
	p := mustPlan(t, hostOf(30, map[int]uint32{3: 7000000}))
	if len(p.ClusterRules) != 1 {
		t.Fatalf("cluster rules: %+v", p.ClusterRules)
	}
	for _, ifc := range p.Interfaces {
		for _, r := range ifc.Rules {
			if r.Priority <= p.ClusterPriority {
				t.Errorf("%s rule at %d is not after the cluster rules at %d", ifc.Name, r.Priority, p.ClusterPriority)
			}
		}
	}
}

func TestAllocation(t *testing.T) {
	p := mustPlan(t, hostOf(3, map[int]uint32{1: 7000000}))
	got := fmt.Sprintf("%d/%d %d/%d %d/%d", p.Interfaces[0].Table, p.Interfaces[0].Priority,
		p.Interfaces[1].Table, p.Interfaces[1].Priority, p.Interfaces[2].Table, p.Interfaces[2].Priority)
	if want := "1000000/20010 7000000/29001 1000002/20030"; got != want {
		t.Errorf("allocation %s, want %s", got, want)
	}
}

func TestTableRoutes(t *testing.T) {
	p := mustPlan(t, `version: 1
interfaces:
  - name: eth0
    addresses: [10.0.0.1/24, 10.0.0.2/24, 10.0.1.1/24, 203.0.113.7/32, 2001:db8::1/64, 2001:db8::2/64]
    gateway: 10.0.0.254
    gateway6: fe80::1
`)
	var routes []string
	for _, r := range p.Interfaces[0].TableRoutes {
		routes = append(routes, fmt.Sprintf("%v via %v", r.Destination, r.Gateway))
	}
	want := "10.0.0.0/24 via invalid IP, 10.0.1.0/24 via invalid IP, invalid Prefix via 10.0.0.254, 2001:db8::/64 via invalid IP, invalid Prefix via fe80::1"
	if got := strings.Join(routes, ", "); got != want {
		t.Errorf("routes:\n%s\nwant:\n%s", got, want)
	}
	if n := len(p.Interfaces[0].Rules); n != 6 {
		t.Errorf("%d rules, want one per address (6)", n)
	}
	if r := p.Interfaces[0].Rules[3]; r.From.String() != "203.0.113.7/32" || r.Is6() {
		t.Errorf("rule for the /32: %+v", r)
	}
	if r := p.Interfaces[0].Rules[4]; r.From.String() != "2001:db8::1/128" || !r.Is6() {
		t.Errorf("IPv6 rule: %+v", r)
	}
}

// trackedHost describes n interfaces, tracking connections on those in tracked.
func trackedHost(n int, tracked ...int) string {
	var b strings.Builder
	b.WriteString("version: 1\ncni: [calico, kube-proxy]\ninterfaces:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: eth%d\n    addresses: [10.%d.0.1/24]\n    gateway: 10.%d.0.254\n", i, i, i)
		for _, j := range tracked {
			if j == i {
				b.WriteString("    track_connections: true\n")
			}
		}
	}
	return b.String()
}

// TestMarksNeverMove: an interface's mark is its position's, in a field of fixed width, so tracking another
// interface, appending one or no longer tracking one leaves every other mark where it was; established
// connections keep their return path. The request bit is the field's top bit and no value uses it.
func TestMarksNeverMove(t *testing.T) {
	marks := func(src string) (map[string]uint32, uint32) {
		p := mustPlan(t, src)
		out := map[string]uint32{}
		for _, ifc := range p.Tracked() {
			out[ifc.Name] = ifc.Mark
			if ifc.Mark&p.RequestBit() != 0 || ifc.Mark&^p.ValueMask() != 0 {
				t.Errorf("%s: mark %#x outside the value bits %#x", ifc.Name, ifc.Mark, p.ValueMask())
			}
		}
		return out, p.MarkMask
	}
	base, mask := marks(trackedHost(3, 1))
	for _, src := range []string{trackedHost(3, 1, 2), trackedHost(5, 0, 1, 4), trackedHost(7, 1, 6)} {
		got, m := marks(src)
		if m != mask || got["eth1"] != base["eth1"] {
			t.Errorf("eth1's mark moved from %#x in %#x to %#x in %#x:\n%s", base["eth1"], mask, got["eth1"], m, src)
		}
	}
	if mask&0x4000 != 0 || mask&0xffff0000 != 0 {
		t.Errorf("field %#x takes kube-proxy's or Calico's bits", mask)
	}
}

// TestMarkRefusals: a tracked interface past what the field numbers, and a pinned field of one bit.
func TestMarkRefusals(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{trackedHost(8, 7), "interfaces[7] has no value left in fwmark bits"},
		{"mark_mask: 0x1000\n" + trackedHost(2, 1), "has one bit; track_connections needs at least two"},
	} {
		h, rep := description.Parse([]byte(c.src))
		if rep.HasErrors(false) {
			t.Fatalf("parse: %+v", rep.Entries)
		}
		_, rep = Build(h)
		if !rep.HasErrors(false) || !strings.Contains(fmt.Sprint(rep.Entries), c.want) {
			t.Errorf("want an error containing %q, got %+v", c.want, rep.Entries)
		}
	}
}

// TestDynamicInterfaces: dhcp4 and accept_ra track connections in the families they serve, give the host the
// lease's routes through a suppress rule after every interface's source rules, and name the follower's slot.
func TestDynamicInterfaces(t *testing.T) {
	p := mustPlan(t, `version: 1
interfaces:
  - name: eth-a
    addresses: [10.1.0.10/24]
    gateway: 10.1.0.1
  - name: eth-b
    dhcp4: true
  - name: eth-c
    accept_ra: true
    addresses: [10.3.0.5/24]
`)
	b, c := p.Interfaces[1], p.Interfaces[2]
	if b.Mark == 0 || c.Mark == 0 || b.MarkRules[0].Family != 4 || c.MarkRules[0].Family != 6 {
		t.Errorf("mark rules: %+v / %+v", b.MarkRules, c.MarkRules)
	}
	if len(b.LeaseRules) != 1 || b.LeaseRules[0].Priority != 29999-1 || !b.LeaseRules[0].SuppressDefault || b.LeaseRules[0].Family != 4 || b.LeaseRules[0].Table != b.Table {
		t.Errorf("eth-b lease rules %+v", b.LeaseRules)
	}
	if len(c.LeaseRules) != 1 || c.LeaseRules[0].Family != 6 || len(c.Rules) != 1 {
		t.Errorf("eth-c: lease rules %+v, rules %+v", c.LeaseRules, c.Rules)
	}
	if len(p.Interfaces[0].LeaseRules) != 0 {
		t.Errorf("a static interface has lease rules")
	}
	slots := p.FollowSlots()
	if len(slots) != 2 || slots[0].Interface != "eth-b" || slots[0].Priority != b.Priority || slots[0].Table != b.Table {
		t.Errorf("follow slots %+v", slots)
	}
	kernel := 0
	for _, r := range p.KernelRules() {
		if r.SuppressDefault {
			kernel++
		}
	}
	if kernel != 2 {
		t.Errorf("%d suppress rules in the kernel's shape, want one per interface and family: 2", kernel)
	}
}

// TestLeaseRuleCollisions: the lease rule must come after every interface's source rules.
func TestLeaseRuleCollisions(t *testing.T) {
	for _, c := range []struct{ desc, want string }{
		{"version: 1\ninterfaces:\n  - name: eth-b\n    dhcp4: true\n  - name: eth-c\n    addresses: [10.3.0.5/24]\n    priority: 29999\n", "which is not after eth-c's rules at 29999"},
		{"version: 1\npriority_range: {min: 20000, max: 20010}\ninterfaces:\n  - name: eth-b\n    dhcp4: true\n", "which is not after eth-b's rules at 20010"},
	} {
		h, rep := description.Parse([]byte(c.desc))
		if rep.HasErrors(false) {
			t.Fatal(rep.Entries)
		}
		_, rep = Build(h)
		if !rep.HasErrors(false) || !strings.Contains(fmt.Sprint(rep.Entries), c.want) {
			t.Errorf("%q: %+v", c.desc, rep.Entries)
		}
	}
}
