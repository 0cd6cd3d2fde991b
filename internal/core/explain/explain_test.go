package explain

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/routing"
	_ "github.com/symroute/symroute/internal/tools/golden"
)

// fakeKernel holds links, rules and tables, and answers lookups by walking its rules as the kernel does (the
// walk explain's own ruleFor must agree with): the first rule whose selectors match and whose table has a route.
type fakeKernel struct {
	inv    routing.Inventory
	tables map[uint32][]routing.Route
	read   []uint32 // the tables explain read whole
}

func (k *fakeKernel) Links() ([]routing.Link, error) {
	var out []routing.Link
	for _, l := range k.inv.Links {
		l.Addresses = nil
		out = append(out, l)
	}
	return out, nil
}

func (k *fakeKernel) AllAddresses() (map[int][]routing.Address, error) {
	out := map[int][]routing.Address{}
	for _, l := range k.inv.Links {
		for _, p := range l.Addresses {
			out[l.Index] = append(out[l.Index], routing.Address{Prefix: p})
		}
	}
	return out, nil
}

func (k *fakeKernel) Rules() ([]routing.Rule, error) { return k.inv.Rules, nil }
func (k *fakeKernel) Routes(t uint32) ([]routing.Route, error) {
	k.read = append(k.read, t)
	return k.tables[t], nil
}
func (k *fakeKernel) Lookup(q routing.Query) (routing.Answer, error) {
	rules := slices.Clone(k.inv.Rules)
	slices.SortStableFunc(rules, func(a, b routing.Rule) int { return int(a.Priority) - int(b.Priority) })
	iif := q.Iif
	if iif == "" {
		iif = "lo"
	}
	for _, r := range rules {
		if r.Family != routing.FamilyV4 || r.From.IsValid() && !(q.Src.IsValid() && r.From.Contains(q.Src)) || r.To.IsValid() && !r.To.Contains(q.Dst) ||
			r.Iif != "" && r.Iif != iif || (q.Mark^r.Mark)&r.Mask != 0 {
			continue
		}
		best, ans := -1, routing.Answer{}
		for _, rt := range k.tables[r.Table] {
			bits := 0
			if rt.Destination.IsValid() {
				if !rt.Destination.Contains(q.Dst) {
					continue
				}
				bits = rt.Destination.Bits()
			}
			if bits > best {
				best, ans = bits, routing.Answer{LinkIndex: rt.LinkIndex, Table: r.Table, Gateway: rt.Gateway}
			}
		}
		if best > 0 || best == 0 && !r.SuppressDefault {
			return ans, nil
		}
	}
	return routing.Answer{}, errors.New("network is unreachable")
}

type fakeSysctl map[string]string

func (s fakeSysctl) Read(key string) (string, bool, error) { v, ok := s[key]; return v, ok, nil }

var (
	hostB  = netip.MustParseAddr("10.0.0.1")
	client = netip.MustParseAddr("198.51.100.7")
	pod    = netip.MustParseAddr("10.244.1.5")
)

func rule(prio uint32, from string, table uint32) routing.Rule {
	r := routing.Rule{Family: routing.FamilyV4, Priority: prio, Table: table, Action: routing.ActionLookup, Protocol: 4}
	if from != "" {
		r.From = netip.MustParsePrefix(from)
	}
	return r
}

// twoNICHost: eth-a (1) with main's default route, eth-b (2) on 10.0.0.0/24 with its router 10.0.0.254, a pod
// behind cali1 (3); the client is beyond eth-b's router. No policy routing yet.
func twoNICHost() *fakeKernel {
	k := &fakeKernel{tables: map[uint32][]routing.Route{}}
	k.inv.Links = []routing.Link{
		{Index: 1, Name: "eth-a", Addresses: []netip.Prefix{netip.MustParsePrefix("192.168.1.10/24")}},
		{Index: 2, Name: "eth-b", Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		{Index: 3, Name: "cali1"},
		{Index: 9, Name: "lo", Loopback: true},
	}
	k.inv.Rules = []routing.Rule{rule(32766, "", 254)}
	k.tables[254] = []routing.Route{
		{Family: routing.FamilyV4, Gateway: netip.MustParseAddr("192.168.1.1"), LinkIndex: 1},
		{Family: routing.FamilyV4, Destination: netip.MustParsePrefix("192.168.1.0/24"), LinkIndex: 1},
		{Family: routing.FamilyV4, Destination: netip.MustParsePrefix("10.0.0.0/24"), LinkIndex: 2},
		{Family: routing.FamilyV4, Destination: netip.MustParsePrefix("10.244.1.5/32"), LinkIndex: 3},
	}
	k.inv.DefaultRoutes = []routing.Route{{Family: routing.FamilyV4, Gateway: netip.MustParseAddr("192.168.1.1"), LinkIndex: 1, Table: 254}}
	return k
}

// withTableB gives eth-b table 1000001 with its subnet and router.
func withTableB(k *fakeKernel) {
	k.tables[1000001] = []routing.Route{
		{Family: routing.FamilyV4, Destination: netip.MustParsePrefix("10.0.0.0/24"), LinkIndex: 2},
		{Family: routing.FamilyV4, Gateway: netip.MustParseAddr("10.0.0.254"), LinkIndex: 2},
	}
	k.inv.DefaultRoutes = append(k.inv.DefaultRoutes, routing.Route{Family: routing.FamilyV4, Gateway: netip.MustParseAddr("10.0.0.254"), LinkIndex: 2, Table: 1000001})
}

func mustExplain(t *testing.T, k *fakeKernel, sys fakeSysctl, q Question, h Hints) Result {
	t.Helper()
	res, err := Explain(k, sys, q, h)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestAsymmetricWithoutDescriptionNamesTheInterfaceToDescribe(t *testing.T) {
	k := twoNICHost()
	withTableB(k) // a table exists, but no rule sends eth-b's replies to it
	res := mustExplain(t, k, fakeSysctl{}, Question{Client: client, To: hostB}, Hints{})
	if res.Request.Interface != "eth-b" || res.Request.InterfaceFrom != "address" || res.Reply.Interface != "eth-a" || res.Symmetric {
		t.Fatalf("%+v", res)
	}
	if res.Reply.Rule == nil || res.Reply.Rule.Priority != 32766 || res.Reply.Gateway != "192.168.1.1" {
		t.Errorf("reply %+v", res.Reply)
	}
	if slices.Contains(k.read, 254) {
		t.Errorf("explain read main whole, though the kernel's answer came from it: read %v", k.read)
	}
	// eth-b's router is in a table no rule looks up, which explain does not read: it says to find it.
	if want := "describe eth-b: {name: eth-b, addresses: [10.0.0.1/24], gateway: <its router>}"; !strings.HasPrefix(res.Fix, want) {
		t.Errorf("fix %q, want it to start %q", res.Fix, want)
	}
	// A rule of someone's looks that table up, for another source: explain reads it, and names the router.
	k.inv.Rules = append(k.inv.Rules, rule(100, "10.0.0.99/32", 1000001))
	res = mustExplain(t, k, fakeSysctl{}, Question{Client: client, To: hostB}, Hints{})
	if want := "describe eth-b: {name: eth-b, addresses: [10.0.0.1/24], gateway: 10.0.0.254}"; !strings.HasPrefix(res.Fix, want) {
		t.Errorf("fix %q, want it to start %q", res.Fix, want)
	}
}

func TestStrictRPFilterDropIsPredicted(t *testing.T) {
	k := twoNICHost()
	sys := fakeSysctl{"net.ipv4.conf.eth-b.rp_filter": "1"}
	res := mustExplain(t, k, sys, Question{Client: client, To: hostB}, Hints{})
	if res.Request.RPFilter != "drop" || res.Request.RPFilterMode != "strict" || res.Request.ReverseInterface != "eth-a" || res.Symmetric {
		t.Fatalf("%+v", res.Request)
	}
	// Loose on all wins over strict on the interface: max(all, interface).
	sys["net.ipv4.conf.all.rp_filter"] = "2"
	if res := mustExplain(t, k, sys, Question{Client: client, To: hostB}, Hints{}); res.Request.RPFilter != "accept" || res.Request.RPFilterMode != "loose" {
		t.Errorf("with all=2: %+v", res.Request)
	}
}

func TestSymroutesSourceRuleIsFound(t *testing.T) {
	k := twoNICHost()
	withTableB(k)
	k.inv.Rules = append(k.inv.Rules, rule(20020, "10.0.0.1/32", 1000001))
	sys := fakeSysctl{"net.ipv4.conf.eth-b.rp_filter": "1"}
	res := mustExplain(t, k, sys, Question{Client: client, To: hostB}, Hints{TableNames: map[uint32]string{1000001: "symroute-eth-b"}})
	if !res.Symmetric || res.Fix != "" || res.Request.RPFilter != "accept" {
		t.Fatalf("%+v", res)
	}
	if r := res.Reply.Rule; r == nil || r.Priority != 20020 || r.Selector != "from 10.0.0.1" || !r.Symroute || res.Reply.TableName != "symroute-eth-b" {
		t.Errorf("reply %+v rule %+v", res.Reply, res.Reply.Rule)
	}
}

func TestHandMadeTableIsExplained(t *testing.T) {
	k := twoNICHost()
	k.tables[1] = []routing.Route{{Family: routing.FamilyV4, Gateway: netip.MustParseAddr("192.168.1.1"), LinkIndex: 1}}
	hand := rule(100, "10.0.0.1/32", 1)
	hand.Protocol = 3 // boot: ip rule add by hand
	k.inv.Rules = append(k.inv.Rules, hand)
	res := mustExplain(t, k, fakeSysctl{}, Question{Client: client, To: hostB}, Hints{})
	if res.Reply.Rule == nil || res.Reply.Rule.Priority != 100 || res.Reply.Rule.Symroute || res.Reply.Table != 1 {
		t.Fatalf("reply %+v", res.Reply)
	}
	if !strings.Contains(res.Fix, "rule 100") || !strings.Contains(res.Fix, "not symroute's") {
		t.Errorf("fix %q does not name the hand-made rule", res.Fix)
	}
}

func TestTrackedReplyFromAPodFollowsItsMark(t *testing.T) {
	k := twoNICHost()
	withTableB(k)
	k.inv.Rules = append(k.inv.Rules,
		routing.Rule{Family: routing.FamilyV4, Priority: 20001, Mark: 0x2800, Mask: 0x3c00, Iif: "eth-b", Table: 254, Action: 1, Protocol: 4},
		routing.Rule{Family: routing.FamilyV4, Priority: 20002, Mark: 0x800, Mask: 0x1c00, Table: 1000001, Action: 1, Protocol: 4})
	q := Question{Client: client, To: pod, In: "eth-b"}
	res := mustExplain(t, k, fakeSysctl{}, q, Hints{Tracked: true})
	if !res.Symmetric || !res.Reply.Forwarded || res.Reply.FromInterface != "cali1" || res.Reply.Mark != "0x800" || res.Request.Mark != "0x2800" {
		t.Fatalf("%+v", res)
	}
	if r := res.Reply.Rule; r == nil || r.Priority != 20002 || r.Selector != "from all fwmark 0x800/0x1c00" {
		t.Errorf("rule %+v", res.Reply.Rule)
	}
	// Without the nftables table nothing carries the mark: the reply follows main, and a note says why.
	res = mustExplain(t, k, fakeSysctl{}, q, Hints{Tracked: false})
	if res.Symmetric || res.Reply.Interface != "eth-a" || len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "not loaded") {
		t.Errorf("untracked: %+v", res)
	}
}

func TestFixNamesTheDescriptionsLine(t *testing.T) {
	h, rep := description.Parse([]byte(`version: 1
interfaces:
  - name: eth-a
    addresses: [192.168.1.10/24]
    gateway: 192.168.1.1
    default_route: true
  - name: eth-b
    addresses: [10.0.0.9/24]
    gateway: 10.0.0.254
`))
	if rep.HasErrors(false) {
		t.Fatal(rep.Entries)
	}
	k := twoNICHost()
	res := mustExplain(t, k, fakeSysctl{}, Question{Client: client, To: hostB}, Hints{Host: h})
	if want := "add 10.0.0.1/24 to interfaces[1].addresses (line 8)"; !strings.HasPrefix(res.Fix, want) {
		t.Errorf("fix %q, want it to start %q", res.Fix, want)
	}
	res = mustExplain(t, k, fakeSysctl{}, Question{Client: client, To: pod, In: "eth-b"}, Hints{Host: h})
	if want := "set track_connections: true at interfaces[1] (line 7)"; !strings.HasPrefix(res.Fix, want) {
		t.Errorf("fix %q, want it to start %q", res.Fix, want)
	}
}

func TestQuestionsTheHostCannotAnswerAreTheUsers(t *testing.T) {
	k := twoNICHost()
	_, err := Explain(k, fakeSysctl{}, Question{Client: client, To: hostB, In: "eth-z"}, Hints{})
	var u UsageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "eth-z") {
		t.Errorf("err %v", err)
	}
	_, err = Explain(k, fakeSysctl{}, Question{Client: client, To: netip.MustParseAddr("2001:db8::1")}, Hints{})
	if !errors.As(err, &u) {
		t.Errorf("families: err %v", err)
	}
}

func TestNoRouteToTheClientIsAnAnswer(t *testing.T) {
	k := twoNICHost()
	k.tables[254] = k.tables[254][1:] // no default route
	res := mustExplain(t, k, fakeSysctl{}, Question{Client: client, To: netip.MustParseAddr("10.244.1.5")}, Hints{})
	if res.Symmetric || res.Request.Interface != "" || res.Request.RPFilter != "drop" || !strings.Contains(res.Fix, "no route to "+client.String()) {
		t.Errorf("%+v", res)
	}
}

// TestPodSourceIsWalkedNotAskedWithItsLinksChecks: for a reply from a pod behind DNAT, explain walks the rules
// itself; the fake kernel refuses every lookup from a source that is not the host's, as a kernel with strict
// rp_filter on lo or forwarding off does for "ip route get ... iif lo".
func TestPodSourceIsWalkedNotAskedWithItsLinksChecks(t *testing.T) {
	k := &refusingKernel{twoNICHost()}
	sys := fakeSysctl{"net.ipv4.conf.all.rp_filter": "1"}
	res := mustExplain(t, k.fakeKernel, sys, Question{Client: client, To: pod, In: "eth-a"}, Hints{})
	res2, err := Explain(k, sys, Question{Client: client, To: pod, In: "eth-a"}, Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Request.RPFilter != "accept" || res2.Request.ReverseInterface != "eth-a" || res2.Reply.Interface != "eth-a" || !res2.Symmetric || res2.Reply.Rule == nil || res2.Reply.Rule.Priority != 32766 {
		t.Errorf("walked: %+v (the kernel's own answers gave %+v)", res2, res)
	}
}

// refusingKernel answers only lookups from no source or the host's own, as a kernel does whose lo or
// forwarding refuses the others.
type refusingKernel struct{ *fakeKernel }

func (k *refusingKernel) Lookup(q routing.Query) (routing.Answer, error) {
	if q.Iif != "" {
		return routing.Answer{}, errors.New("invalid argument")
	}
	return k.fakeKernel.Lookup(q)
}

// TestOwnershipComesFromThePlan: with a description, a rule in symroute's range with networkd's protocol is
// still another program's when the plan does not make it, and the fix names it.
func TestOwnershipComesFromThePlan(t *testing.T) {
	k := twoNICHost()
	k.tables[7] = []routing.Route{{Family: routing.FamilyV4, Gateway: netip.MustParseAddr("192.168.1.1"), LinkIndex: 1}}
	k.inv.Rules = append(k.inv.Rules, rule(20005, "10.0.0.1/32", 7))
	h := Hints{Owned: func(routing.Rule) bool { return false }}
	res := mustExplain(t, k, fakeSysctl{}, Question{Client: client, To: hostB}, h)
	if res.Reply.Rule == nil || res.Reply.Rule.Symroute || !strings.Contains(res.Fix, "rule 20005") {
		t.Errorf("%+v / %q", res.Reply.Rule, res.Fix)
	}
	if res := mustExplain(t, k, fakeSysctl{}, Question{Client: client, To: hostB}, Hints{}); res.Reply.Rule == nil || !res.Reply.Rule.Symroute {
		t.Errorf("without a plan, a rule in the default range with networkd's protocol is taken for symroute's: %+v", res.Reply.Rule)
	}
}
