package drift

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/routing"
	_ "github.com/symroute/symroute/internal/tools/golden"
	"github.com/symroute/symroute/internal/tools/plantest"
)

const twoNIC = `version: 1
cni: [calico]
cluster_cidrs: [10.244.0.0/16]
interfaces:
  - name: eth-a
    addresses: [192.168.1.10/24]
    gateway: 192.168.1.1
  - name: eth-b
    addresses: [10.0.0.1/24]
    gateway: 10.0.0.254
    rp_filter: strict
`

func testPlan(t *testing.T) *plan.Plan { return plantest.Build(t, twoNIC) }

var pfx = netip.MustParsePrefix
var addr = netip.MustParseAddr

// healthy is the snapshot of a host where everything holds.
func healthy(p *plan.Plan) Snapshot {
	s := Snapshot{
		Routes:       map[uint32][]routing.Route{},
		Links:        map[string]int{"eth-a": 2, "eth-b": 3},
		RPFilter:     map[string]int{"all": 0, "eth-a": 2, "eth-b": 1},
		NetworkFiles: map[string]string{"eth-a": "/etc/systemd/network/10-symroute-eth-a.network", "eth-b": "/etc/systemd/network/10-symroute-eth-b.network"},
	}
	for _, r := range p.ClusterRules {
		s.Rules = append(s.Rules, routing.Rule{Priority: r.Priority, To: r.To, Table: r.Table, Protocol: 4})
	}
	for _, ifc := range p.Interfaces {
		for _, r := range ifc.Rules {
			s.Rules = append(s.Rules, routing.Rule{Priority: r.Priority, From: r.From, Table: r.Table, Protocol: 4})
		}
		for _, r := range ifc.TableRoutes {
			s.Routes[ifc.Table] = append(s.Routes[ifc.Table], routing.Route{Destination: r.Destination, Gateway: r.Gateway, Table: r.Table, LinkIndex: s.Links[ifc.Name]})
		}
	}
	for _, pr := range Probes(p, nil, nil) {
		ifc := p.Interfaces[pr.Position]
		s.Probes = append(s.Probes, ProbeResult{Probe: pr, Answer: routing.Answer{LinkIndex: s.Links[ifc.Name], Table: ifc.Table}})
	}
	return s
}

func expected(s Snapshot) Expect { return Expect{NetworkFiles: s.NetworkFiles} }

func TestHealthyHostHasNoFindings(t *testing.T) {
	p := testPlan(t)
	s := healthy(p)
	res := Compare(p, s, expected(s))
	if !res.OK() {
		t.Fatalf("findings on a healthy host: %+v", res.Findings)
	}
	if res.Checked.Rules != 3 || res.Checked.Routes != 4 || res.Checked.Probes != len(s.Probes) || res.Checked.Sysctls != 2 || !res.Checked.Networkd {
		t.Errorf("checked: %+v", res.Checked)
	}
}

// driftCase breaks one thing in a healthy snapshot and names the one finding that must follow.
type driftCase struct {
	name   string
	break_ func(*Snapshot)
	// recorded is the record's applied state, when the case needs one.
	recorded *record.State
	kind     Kind
	text     string
	line     int
	// expected and actual are the finding's Expected and Actual.
	expected, actual string
}

var driftCases = []driftCase{
	{name: "rule deleted", break_: func(s *Snapshot) { s.Rules = s.Rules[1:] }, kind: RuleMissing, text: "rule 20000: from all to 10.244.0.0/16 lookup main is missing", line: 3, expected: "20000: from all to 10.244.0.0/16 lookup main", actual: Absent},
	{name: "foreign rule at our priority", break_: func(s *Snapshot) {
		s.Rules = append(s.Rules, routing.Rule{Priority: 20010, From: pfx("192.168.1.99/32"), Table: 7})
	}, kind: RuleForeign, text: "rule 20010: from 192.168.1.99 lookup 7 takes priority 20010, which symroute uses for eth-a's rules", actual: "20010: from 192.168.1.99 lookup 7"},
	{name: "recorded rule no longer planned", break_: func(s *Snapshot) {
		s.Rules = append(s.Rules, routing.Rule{Priority: 20030, From: pfx("10.9.0.1/32"), Table: 1000002, Protocol: 4, Action: routing.ActionLookup})
	}, recorded: &record.State{Rules: []record.Rule{{Priority: 20030, From: pfx("10.9.0.1/32"), Table: 1000002}}},
		kind: RuleStale, text: "rule 20030: from 10.9.0.1 lookup 1000002 is symroute's but no longer in the plan", expected: Absent, actual: "20030: from 10.9.0.1 lookup 1000002"},
	{name: "table flushed", break_: func(s *Snapshot) { s.Routes[1000001] = nil }, kind: TableEmpty, text: "table 1000001 (symroute-eth-b) is empty", line: 8, expected: "2 routes", actual: "no routes"},
	{name: "route deleted", break_: func(s *Snapshot) { s.Routes[1000000] = s.Routes[1000000][:1] }, kind: RouteMissing, text: "route default via 192.168.1.1 table 1000000 is missing", line: 5, expected: "default via 192.168.1.1 table 1000000", actual: Absent},
	{name: "route on the wrong link", break_: func(s *Snapshot) { s.Routes[1000000][1].LinkIndex = 3 }, kind: RouteMissing, text: "route default via 192.168.1.1 table 1000000 leaves by link 3, not eth-a", line: 5, expected: "dev eth-a", actual: "dev eth-b"},
	{name: "route added by someone", break_: func(s *Snapshot) {
		s.Routes[1000000] = append(s.Routes[1000000], routing.Route{Destination: pfx("203.0.113.0/24"), Gateway: addr("192.168.1.1"), LinkIndex: 2})
	}, kind: RouteUnexpected, text: "route 203.0.113.0/24 via 192.168.1.1 table 1000000 is in symroute's table but not in the plan", expected: Absent, actual: "203.0.113.0/24 via 192.168.1.1 table 1000000"},
	{name: "link gone", break_: func(s *Snapshot) {
		delete(s.Links, "eth-b")
		delete(s.RPFilter, "eth-b")
		delete(s.NetworkFiles, "eth-b")
		s.Probes = s.Probes[:len(s.Probes)/2]
	}, kind: LinkMissing, text: "link eth-b does not exist", line: 8, expected: "link eth-b", actual: Absent},
	{name: "asymmetric answer", break_: func(s *Snapshot) { s.Probes[0].Answer = routing.Answer{LinkIndex: 3, Table: 254} }, kind: ProbeWrong, text: "would leave by eth-b through table main, not by eth-a through symroute-eth-a (1000000)", line: 6, expected: "dev eth-a table 1000000", actual: "dev eth-b table main"},
	{name: "no route at all", break_: func(s *Snapshot) { s.Probes[1].Err = "network is unreachable" }, kind: ProbeWrong, text: "a reply from 192.168.1.10 to 10.0.0.2 (a peer on eth-b's subnet 10.0.0.0/24): the kernel gave no route: network is unreachable", line: 6, expected: "dev eth-a table 1000000", actual: "no route"},
	{name: "rp_filter outranked by all", break_: func(s *Snapshot) { s.RPFilter["all"] = 2 }, kind: RPFilterWrong, text: "effective rp_filter of eth-b is loose (the larger of all=2 and eth-b=1), want strict", line: 11, expected: "strict", actual: "loose"},
	{name: "another file won", break_: func(s *Snapshot) { s.NetworkFiles["eth-a"] = "/run/systemd/network/10-netplan-eth-a.network" }, kind: NetworkFile, text: "networkd configured eth-a with /run/systemd/network/10-netplan-eth-a.network", line: 5, expected: "/etc/systemd/network/10-symroute-eth-a.network", actual: "/run/systemd/network/10-netplan-eth-a.network"},
	{name: "unmanaged", break_: func(s *Snapshot) { s.NetworkFiles["eth-b"] = "" }, kind: NetworkFile, text: "networkd does not manage eth-b", line: 8, expected: "/etc/systemd/network/10-symroute-eth-b.network", actual: "unmanaged"},
	{name: "not configured", break_: func(s *Snapshot) { s.LinkStates = map[string]string{"eth-a": "configuring"} }, kind: LinkNotConfigured, text: "networkd has not configured eth-a: it is configuring", line: 5, expected: "configured", actual: "configuring"},
}

// TestEachDriftIsNamed breaks one thing at a time and expects exactly one finding of the right kind, naming it.
func TestEachDriftIsNamed(t *testing.T) {
	p := testPlan(t)
	for _, c := range driftCases {
		t.Run(c.name, func(t *testing.T) {
			s := healthy(p)
			c.break_(&s)
			res := Compare(p, s, Expect{NetworkFiles: expected(healthy(p)).NetworkFiles, Recorded: c.recorded})
			if len(res.Findings) != 1 {
				t.Fatalf("%d findings, want 1: %+v", len(res.Findings), res.Findings)
			}
			f := res.Findings[0]
			if f.Kind != c.kind || !strings.Contains(f.Message, c.text) || f.Line != c.line {
				t.Errorf("finding %+v\nwant kind %s, line %d, text %q", f, c.kind, c.line, c.text)
			}
			if f.Expected != c.expected || f.Actual != c.actual {
				t.Errorf("expected %q, actual %q; want %q, %q", f.Expected, f.Actual, c.expected, c.actual)
			}
		})
	}
}

// TestFindingsJSON: verify's JSON has a list of findings even when there is none, and each finding's fields
// under their stable names.
func TestFindingsJSON(t *testing.T) {
	p := testPlan(t)
	s := healthy(p)
	data, err := json.Marshal(Compare(p, s, expected(s)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"findings":[]`) {
		t.Errorf("no findings did not marshal as []: %s", data)
	}
	s.RPFilter["all"] = 2
	data, _ = json.Marshal(Compare(p, s, expected(s)).Findings)
	want := `[{"kind":"rp_filter","interface":"eth-b","message":"effective rp_filter of eth-b is loose (the larger of all=2 and eth-b=1), want strict","path":"interfaces[1].rp_filter","line":11,"column":16,"expected":"strict","actual":"loose"}]`
	if string(data) != want {
		t.Errorf("findings JSON\n%s\nwant\n%s", data, want)
	}
}

// TestEveryKindHasACase: a kind added to Kinds without a case above that produces it fails here.
func TestEveryKindHasACase(t *testing.T) {
	covered := map[Kind]bool{}
	for _, c := range driftCases {
		covered[c.kind] = true
	}
	for _, k := range Kinds {
		if !covered[k] {
			t.Errorf("no case of TestEachDriftIsNamed produces %s", k)
		}
		delete(covered, k)
	}
	for k := range covered {
		t.Errorf("%s is produced but not listed in Kinds", k)
	}
}

// TestRulesInTheRange: in priority_range, a rule the record says is symroute's is stale (apply deletes it), and
// anyone else's rule in a gap between symroute's priorities is fine and noted, never a finding.
func TestRulesInTheRange(t *testing.T) {
	p := testPlan(t)
	stale := routing.Rule{Priority: 20030, From: pfx("10.9.0.1/32"), Table: 1000002, Protocol: 4, Action: routing.ActionLookup}
	admin := routing.Rule{Priority: 20015, From: pfx("10.9.9.9/32"), Table: 77}
	s := healthy(p)
	s.Rules = append(s.Rules, stale, admin)
	rec := &record.State{Rules: []record.Rule{{Priority: 20030, From: pfx("10.9.0.1/32"), Table: 1000002}}}
	res := Compare(p, s, Expect{NetworkFiles: s.NetworkFiles, Recorded: rec})
	if len(res.Findings) != 1 || res.Findings[0].Kind != RuleStale || !strings.Contains(res.Findings[0].Message, "20030: from 10.9.0.1 lookup 1000002") {
		t.Errorf("findings: %+v", res.Findings)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "20015: from 10.9.9.9 lookup 77 sits in priority_range") {
		t.Errorf("notes: %q", res.Notes)
	}
	// Without the record the same rule is someone else's: a note, not a finding.
	res = Compare(p, s, expected(s))
	if len(res.Findings) != 0 || len(res.Notes) != 2 {
		t.Errorf("without a record: findings %+v, notes %q", res.Findings, res.Notes)
	}
}

func TestProbes(t *testing.T) {
	p := testPlan(t)
	var got []string
	for _, pr := range Probes(p, nil, nil) {
		got = append(got, pr.Src.String()+">"+pr.Dst.String())
	}
	want := "192.168.1.10>198.51.100.1 192.168.1.10>10.0.0.2 10.0.0.1>198.51.100.1 10.0.0.1>192.168.1.1"
	if strings.Join(got, " ") != want {
		t.Errorf("probes %v, want %s", got, want)
	}
}

// tracked is twoNIC with eth-b tracking connections.
const tracked = twoNIC + `    track_connections: true
`

// healthyTracked is healthy plus the mark rules of both families and src_valid_mark on eth-b.
func healthyTracked(p *plan.Plan) Snapshot {
	s := healthy(p)
	for _, r := range p.KernelRules() {
		if r.Mark == 0 {
			continue
		}
		fam := routing.FamilyV4
		if r.Family == 6 {
			fam = routing.FamilyV6
		}
		s.Rules = append(s.Rules, routing.Rule{Family: fam, Priority: r.Priority, Mark: r.Mark, Mask: r.Mask, Iif: r.Iif, Table: r.Table, Protocol: 4, Action: routing.ActionLookup})
	}
	s.SrcValidMark = map[string]int{"all": 0, "eth-b": 1}
	return s
}

// TestTrackedConnectionsDrift: the mark rules and src_valid_mark are checked like the rest, reported at the
// track_connections line; a foreign rule that selects another mark at a mark priority is only a note.
func TestTrackedConnectionsDrift(t *testing.T) {
	p := plantest.Build(t, tracked)
	if res := Compare(p, healthyTracked(p), expected(healthyTracked(p))); !res.OK() || res.Checked.Rules != 3+2 || res.Checked.Sysctls != 3 {
		t.Fatalf("healthy tracked host: findings %+v, checked %+v", res.Findings, res.Checked)
	}
	for _, c := range []driftCase{
		{name: "mark rule deleted", break_: func(s *Snapshot) {
			s.Rules = slices.DeleteFunc(s.Rules, func(r routing.Rule) bool { return r.Iif == "eth-b" })
		}, kind: RuleMissing, text: "rule 20001: from all fwmark 0x2800/0x3c00 iif eth-b lookup main is missing", line: 12},
		{name: "src_valid_mark off", break_: func(s *Snapshot) { s.SrcValidMark["eth-b"] = 0 }, kind: SrcValidMarkOff, text: "src_valid_mark is off on eth-b", line: 12},
		{name: "tracked replies taken by another rule", break_: func(s *Snapshot) {
			for i := range s.Probes {
				if s.Probes[i].Mark != 0 {
					s.Probes[i].Answer = routing.Answer{LinkIndex: 2, Table: 52}
				}
			}
		}, kind: ProbeWrong, text: "on a connection tracked on eth-b (mark 0x800) would leave by eth-a through table 52", line: 12},
		{name: "a foreign rule with the same mark at a mark priority", break_: func(s *Snapshot) {
			s.Rules = append(s.Rules, routing.Rule{Family: routing.FamilyV4, Priority: 20002, Mark: 0x2000, Mask: 0x2000, Table: 7, Protocol: 3, Action: routing.ActionLookup})
		}, kind: RuleForeign, text: "rule 20002: from all fwmark 0x2000/0x2000 lookup 7 takes priority 20002"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := healthyTracked(p)
			c.break_(&s)
			res := Compare(p, s, expected(s))
			if len(res.Findings) != 1 {
				t.Fatalf("%d findings, want 1: %+v", len(res.Findings), res.Findings)
			}
			if f := res.Findings[0]; f.Kind != c.kind || !strings.Contains(f.Message, c.text) || f.Line != c.line {
				t.Errorf("got %s %q at line %d, want %s %q at line %d", f.Kind, f.Message, f.Line, c.kind, c.text, c.line)
			}
		})
	}
	s := healthyTracked(p)
	s.Rules = append(s.Rules, routing.Rule{Family: routing.FamilyV4, Priority: 20002, Mark: 0x1000, Mask: 0x7000, Table: 7, Protocol: 3, Action: routing.ActionLookup})
	if res := Compare(p, s, expected(s)); !res.OK() || !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "selects traffic none of them does") }) {
		t.Errorf("a rule of another mark at 20002: findings %+v, notes %q", res.Findings, res.Notes)
	}
}

// TestDynamicInterfaceDrift: a dynamic interface's live address needs the follower's rule, found by its protocol
// at the interface's slot; a stale one is named; a lease without a router is a note, not drift, and its address
// is not probed beyond the subnet.
func TestDynamicInterfaceDrift(t *testing.T) {
	p := plantest.Build(t, "version: 1\ninterfaces:\n  - name: eth-a\n    addresses: [192.168.1.10/24]\n    gateway: 192.168.1.1\n  - name: eth-b\n    dhcp4: true\n    rp_filter: strict\n")
	b := p.Interfaces[1]
	lease := addr("10.2.0.50")
	base := func(router bool) Snapshot {
		s := healthyTracked(p)
		s.SrcValidMark = map[string]int{"all": 0, "eth-b": 1}
		for _, r := range p.KernelRules() {
			if r.SuppressDefault {
				s.Rules = append(s.Rules, routing.Rule{Family: routing.FamilyV4, Priority: r.Priority, SuppressDefault: true, Table: r.Table, Protocol: 4, Action: routing.ActionLookup})
			}
		}
		s.Rules = append(s.Rules, routing.Rule{Family: routing.FamilyV4, Priority: b.Priority, From: pfx("10.2.0.50/32"), Table: b.Table, Protocol: 83, Action: routing.ActionLookup})
		s.Followed = map[string][]netip.Addr{"eth-b": {lease}}
		s.Routes[b.Table] = []routing.Route{{Destination: pfx("10.2.0.0/24"), LinkIndex: 3}, {Destination: pfx("10.2.0.1/32"), LinkIndex: 3}}
		if router {
			s.Routes[b.Table] = append(s.Routes[b.Table], routing.Route{Gateway: addr("10.2.0.1"), LinkIndex: 3})
		}
		s.LeaseGateways = map[string][2]bool{"eth-b": {router, false}}
		s.Probes = nil
		for _, pr := range Probes(p, s.Followed, s.LeaseGateways) {
			ifc := p.Interfaces[pr.Position]
			s.Probes = append(s.Probes, ProbeResult{Probe: pr, Answer: routing.Answer{LinkIndex: s.Links[ifc.Name], Table: ifc.Table}})
		}
		return s
	}
	s := base(true)
	if res := Compare(p, s, expected(s)); !res.OK() || !slices.ContainsFunc(s.Probes, func(pr ProbeResult) bool { return pr.Src == lease }) {
		t.Fatalf("healthy: %+v (probes %+v)", res.Findings, s.Probes)
	}

	s = base(true)
	s.Followed["eth-b"] = []netip.Addr{addr("10.2.0.77")}
	res := Compare(p, s, expected(s))
	kinds := map[Kind]int{}
	for _, f := range res.Findings {
		kinds[f.Kind]++
	}
	if kinds[RuleMissing] != 1 || kinds[RuleStale] != 1 {
		t.Errorf("moved lease: %+v", res.Findings)
	}

	s = base(false)
	res = Compare(p, s, expected(s))
	if !res.OK() || !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "named no router") }) ||
		slices.ContainsFunc(s.Probes, func(pr ProbeResult) bool { return pr.Src == lease }) {
		t.Errorf("no router: findings %+v, notes %v", res.Findings, res.Notes)
	}
}
