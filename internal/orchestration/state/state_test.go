package state

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/edges/networkd"
	_ "github.com/symroute/symroute/internal/tools/golden"
	"github.com/symroute/symroute/internal/tools/plantest"
)

// dualStack has an IPv4 and IPv6 interface, a second one with a link-local IPv6 gateway, an IPv6-only one, and
// cluster rules of both families on lo.
const dualStack = `version: 1
cluster_cidrs: [10.244.0.0/16, fd00:10:244::/56]
interfaces:
  - name: eth-a
    addresses: [192.168.1.10/24, 2001:db8:1::10/64]
    gateway: 192.168.1.1
    gateway6: 2001:db8:1::1
    default_route: true
  - name: eth-b
    addresses: [10.0.0.1/24, 2001:db8:2::1/64]
    gateway: 10.0.0.254
    gateway6: fe80::1
  - name: eth-c
    addresses: [2001:db8:3::1/64]
    gateway6: 2001:db8:3::ffff
`

func testPlan(t *testing.T) *plan.Plan { return plantest.Build(t, dualStack) }

// fakeKernel answers as a kernel holding what it is given, and records what it was asked.
type fakeKernel struct {
	rules  []routing.Rule
	routes map[uint32][]routing.Route
	links  map[string]int
	// answers holds the route lookup's answer by source address; an address without one gets errNoRoute.
	answers map[netip.Addr]routing.Answer
	// addresses holds each link's addresses, by index.
	addresses map[int][]routing.Address
	// fail makes a method fail: "Rules", "Routes", "LinkIndex", "Addresses".
	fail map[string]error

	tablesRead []uint32
	lookups    []string
}

var errNoRoute = errors.New("network is unreachable")

func (k *fakeKernel) Rules() ([]routing.Rule, error) { return k.rules, k.fail["Rules"] }

func (k *fakeKernel) Routes(table uint32) ([]routing.Route, error) {
	k.tablesRead = append(k.tablesRead, table)
	return k.routes[table], k.fail["Routes"]
}

func (k *fakeKernel) LinkIndex(name string) (int, bool, error) {
	i, ok := k.links[name]
	return i, ok, k.fail["LinkIndex"]
}

func (k *fakeKernel) Addresses(index int) ([]routing.Address, error) {
	return k.addresses[index], k.fail["Addresses"]
}

func (k *fakeKernel) LinkName(index int) (string, error) {
	for name, i := range k.links {
		if i == index {
			return name, nil
		}
	}
	return "", errors.New("no such link")
}

func (k *fakeKernel) RouteGet(src, dst netip.Addr, mark uint32) (routing.Answer, error) {
	k.lookups = append(k.lookups, src.String()+">"+dst.String())
	a, ok := k.answers[src]
	if !ok {
		return routing.Answer{}, errNoRoute
	}
	return a, nil
}

// fakeNetworkd answers Describe with links, or DescribeLink alone when describeErr is set (networkd without
// Manager.Describe); err makes every call fail, as when networkd does not run.
type fakeNetworkd struct {
	links       []networkd.Link
	describeErr error
	err         error
	asked       []int
}

func (n *fakeNetworkd) DescribeLinks(context.Context) ([]networkd.Link, error) {
	if n.err != nil {
		return nil, n.err
	}
	if n.describeErr != nil {
		return nil, n.describeErr
	}
	return n.links, nil
}

func (n *fakeNetworkd) DescribeLink(_ context.Context, ifindex int) (networkd.Link, error) {
	n.asked = append(n.asked, ifindex)
	if n.err != nil {
		return networkd.Link{}, n.err
	}
	for _, l := range n.links {
		if l.Index == ifindex {
			return l, nil
		}
	}
	return networkd.Link{}, errors.New("no such link")
}

// fakeSysctl holds /proc/sys by sysctl.d key.
type fakeSysctl map[string]string

func (s fakeSysctl) Read(key string) (string, bool, error) {
	v, ok := s[key]
	return v, ok, nil
}

// host is a machine where p holds: every rule, table route and answer as planned, networkd applying symroute's
// own file to every link, and loose rp_filter.
type host struct {
	kernel   *fakeKernel
	networkd *fakeNetworkd
	sysctl   fakeSysctl
	expect   drift.Expect
}

func healthyHost(p *plan.Plan) *host {
	k := &fakeKernel{routes: map[uint32][]routing.Route{}, links: map[string]int{"lo": 1}, answers: map[netip.Addr]routing.Answer{}, fail: map[string]error{}}
	n := &fakeNetworkd{}
	s := fakeSysctl{"net.ipv4.conf.all.rp_filter": "0"}
	expect := drift.Expect{NetworkFiles: map[string]string{"lo": "/etc/systemd/network/10-symroute-lo.network"}}
	n.links = append(n.links, networkd.Link{Index: 1, Name: "lo", AdministrativeState: "configured", NetworkFile: expect.NetworkFiles["lo"]})
	// Describe lists every link, those no file of symroute's concerns too.
	n.links = append(n.links, networkd.Link{Index: 42, Name: "cali0", AdministrativeState: "unmanaged"})
	for _, r := range p.ClusterRules {
		k.rules = append(k.rules, routing.Rule{Priority: r.Priority, To: r.To, Table: r.Table, Protocol: 4, Action: routing.ActionLookup})
	}
	for i, ifc := range p.Interfaces {
		index := 2 + i
		k.links[ifc.Name] = index
		for _, r := range ifc.Rules {
			k.rules = append(k.rules, routing.Rule{Priority: r.Priority, From: r.From, Table: r.Table, Protocol: 4, Action: routing.ActionLookup})
			k.answers[r.From.Addr()] = routing.Answer{LinkIndex: index, Table: ifc.Table}
		}
		for _, r := range ifc.TableRoutes {
			k.routes[ifc.Table] = append(k.routes[ifc.Table], routing.Route{Destination: r.Destination, Gateway: r.Gateway, Table: r.Table, LinkIndex: index})
		}
		file := "/etc/systemd/network/10-symroute-" + ifc.Name + ".network"
		expect.NetworkFiles[ifc.Name] = file
		n.links = append(n.links, networkd.Link{Index: index, Name: ifc.Name, AdministrativeState: "configured", NetworkFile: file})
		s["net.ipv4.conf."+ifc.Name+".rp_filter"] = "2"
	}
	return &host{kernel: k, networkd: n, sysctl: s, expect: expect}
}

func (h *host) sources() Sources {
	return Sources{Kernel: h.kernel, Networkd: h.networkd, Sysctl: h.sysctl}
}

func (h *host) verify(t *testing.T, p *plan.Plan) drift.Result {
	t.Helper()
	res, err := Verify(context.Background(), p, h.expect, h.sources())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func kinds(res drift.Result) []drift.Kind {
	var out []drift.Kind
	for _, f := range res.Findings {
		out = append(out, f.Kind)
	}
	return out
}

// TestGatherReadsEverySourceOnce: on a healthy dual-stack host the snapshot holds the kernel's rules, the routes
// of symroute's tables (main is never read), every probe of both families asked of the kernel, rp_filter, and
// networkd's file and state of every expected link, in one Describe; verify finds nothing.
func TestGatherReadsEverySourceOnce(t *testing.T) {
	p := testPlan(t)
	h := healthyHost(p)
	snap, err := Gather(context.Background(), p, h.expect, h.sources())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.kernel.tablesRead, []uint32{1000000, 1000001, 1000002}) {
		t.Errorf("tables read: %v", h.kernel.tablesRead)
	}
	var want []string
	for _, pr := range drift.Probes(p, nil, nil) {
		want = append(want, pr.Src.String()+">"+pr.Dst.String())
	}
	if len(want) != 10 || !reflect.DeepEqual(h.kernel.lookups, want) {
		t.Errorf("route lookups %v, want the %d probes %v", h.kernel.lookups, len(want), want)
	}
	if v6 := slices.ContainsFunc(snap.Probes, func(r drift.ProbeResult) bool { return r.Src.Is6() && r.Dst.Is6() }); !v6 {
		t.Error("no IPv6 probe")
	}
	if !reflect.DeepEqual(snap.RPFilter, map[string]int{"all": 0, "eth-a": 2, "eth-b": 2, "eth-c": 2}) {
		t.Errorf("rp_filter: %v", snap.RPFilter)
	}
	if !reflect.DeepEqual(snap.NetworkFiles, h.expect.NetworkFiles) || snap.LinkStates["eth-c"] != "configured" || len(snap.LinkStates) != 4 {
		t.Errorf("networkd: files %v, states %v", snap.NetworkFiles, snap.LinkStates)
	}
	if len(h.networkd.asked) != 0 {
		t.Errorf("asked link by link %v where Describe answers", h.networkd.asked)
	}
	res := drift.Compare(p, snap, h.expect)
	if !res.OK() || !res.Checked.Networkd || res.Checked.Probes != 10 || res.Checked.Routes != 10 || len(res.Notes) != 0 {
		t.Errorf("verify on a healthy host: %+v", res)
	}
}

// TestMissingTableIsDriftNotAnError: a table the kernel has no route in (flushed, or never made) reads as empty,
// and verify names it.
func TestMissingTableIsDriftNotAnError(t *testing.T) {
	p := testPlan(t)
	h := healthyHost(p)
	delete(h.kernel.routes, 1000002)
	res := h.verify(t, p)
	if got := kinds(res); !reflect.DeepEqual(got, []drift.Kind{drift.TableEmpty}) || res.Findings[0].Interface != "eth-c" {
		t.Errorf("findings %+v", res.Findings)
	}
}

// TestNetworkdNotAnsweringSkipsItsChecks: without a bus, or with networkd not running on it, the network-file
// checks are skipped with a note that says why, never failed; every other check still runs.
func TestNetworkdNotAnsweringSkipsItsChecks(t *testing.T) {
	p := testPlan(t)
	for name, set := range map[string]func(h *host) Sources{
		"no bus": func(h *host) Sources { s := h.sources(); s.Networkd = nil; return s },
		"networkd not running": func(h *host) Sources {
			h.networkd.err = errors.New("The name org.freedesktop.network1 was not provided by any .service files")
			return h.sources()
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := healthyHost(p)
			h.networkd.links[3].NetworkFile = "/run/systemd/network/10-netplan-eth-b.network" // would be drift, were it read
			h.kernel.rules = h.kernel.rules[1:]                                               // drift all the same
			res, err := Verify(context.Background(), p, h.expect, set(h))
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(res); !reflect.DeepEqual(got, []drift.Kind{drift.RuleMissing}) || res.Checked.Networkd {
				t.Errorf("findings %+v, networkd checked %v", res.Findings, res.Checked.Networkd)
			}
			if len(res.Notes) != 1 || !strings.HasPrefix(res.Notes[0], "which .network file networkd applied was not checked: ") {
				t.Errorf("notes %q", res.Notes)
			}
		})
	}
}

// TestLinkByLinkWhereDescribeIsMissing: a networkd without Manager.Describe is asked link by link, by the index
// the kernel gives each name; a link that does not exist is not asked about.
func TestLinkByLinkWhereDescribeIsMissing(t *testing.T) {
	p := testPlan(t)
	h := healthyHost(p)
	h.networkd.describeErr = errors.New("Unknown method Describe")
	delete(h.kernel.links, "eth-c")
	snap, err := Gather(context.Background(), p, h.expect, h.sources())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.networkd.asked, []int{2, 3, 1}) { // eth-a, eth-b, lo, by name
		t.Errorf("asked about %v", h.networkd.asked)
	}
	want := map[string]string{"lo": h.expect.NetworkFiles["lo"], "eth-a": h.expect.NetworkFiles["eth-a"], "eth-b": h.expect.NetworkFiles["eth-b"]}
	if !reflect.DeepEqual(snap.NetworkFiles, want) {
		t.Errorf("files %v", snap.NetworkFiles)
	}
}

// TestMissingLinkIsNamedAndNotProbed: a link that does not exist is a finding, and its addresses are not probed
// nor its rp_filter read; the other links are checked as usual.
func TestMissingLinkIsNamedAndNotProbed(t *testing.T) {
	p := testPlan(t)
	h := healthyHost(p)
	delete(h.kernel.links, "eth-b")
	res := h.verify(t, p)
	if got := kinds(res); !reflect.DeepEqual(got, []drift.Kind{drift.LinkMissing}) || res.Findings[0].Interface != "eth-b" {
		t.Errorf("findings %+v", res.Findings)
	}
	for _, l := range h.kernel.lookups {
		if strings.HasPrefix(l, "10.0.0.1>") || strings.HasPrefix(l, "2001:db8:2::1>") {
			t.Errorf("probed from the missing link's address: %s", l)
		}
	}
	if res.Checked.Probes != 6 || res.Checked.Sysctls != 2 {
		t.Errorf("checked %+v", res.Checked)
	}
}

// TestIPv6AnswersAreChecked: an IPv6 reply that would leave by another link is named with that link, though the
// link is not one of symroute's; an IPv6 lookup the kernel refuses is a finding, not an error.
func TestIPv6AnswersAreChecked(t *testing.T) {
	p := testPlan(t)
	h := healthyHost(p)
	h.kernel.links["eth9"] = 9
	h.kernel.answers[netip.MustParseAddr("2001:db8:1::10")] = routing.Answer{LinkIndex: 9, Table: 254}
	delete(h.kernel.answers, netip.MustParseAddr("2001:db8:3::1"))
	res := h.verify(t, p)
	var msgs []string
	for _, f := range res.Findings {
		if f.Kind != drift.ProbeWrong {
			t.Errorf("finding %+v", f)
		}
		msgs = append(msgs, f.Interface+": "+f.Message)
	}
	for _, want := range []string{
		"eth-a: a reply from 2001:db8:1::10 to 2001:db8:ffff:ffff::1 (beyond every local subnet) would leave by eth9 through table main",
		"eth-a: a reply from 2001:db8:1::10 to 2001:db8:2::2 (a peer on eth-b's subnet 2001:db8:2::/64) would leave by eth9",
		"eth-c: a reply from 2001:db8:3::1 to 2001:db8:ffff:ffff::1 (beyond every local subnet): the kernel gave no route: network is unreachable",
	} {
		if !slices.ContainsFunc(msgs, func(m string) bool { return strings.HasPrefix(m, want) }) {
			t.Errorf("no finding %q in\n%s", want, strings.Join(msgs, "\n"))
		}
	}
	if len(msgs) != 4 {
		t.Errorf("%d findings, want 4 (two probes per address):\n%s", len(msgs), strings.Join(msgs, "\n"))
	}
}

// TestRPFilterUnreadable: without net.ipv4.conf.all.rp_filter the rp_filter check is skipped with a note.
func TestRPFilterUnreadable(t *testing.T) {
	p := testPlan(t)
	h := healthyHost(p)
	delete(h.sysctl, "net.ipv4.conf.all.rp_filter")
	h.sysctl["net.ipv4.conf.eth-a.rp_filter"] = "1" // strict: drift, were it checked
	res := h.verify(t, p)
	if !res.OK() || res.Checked.Sysctls != 0 || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "rp_filter not checked: net.ipv4.conf.all.rp_filter does not exist") {
		t.Errorf("findings %+v, checked %+v, notes %q", res.Findings, res.Checked, res.Notes)
	}
}

// TestKernelErrorsStopTheGathering: a kernel that cannot be read is an error (exit 3), never an empty state that
// would pass or fail verification.
func TestKernelErrorsStopTheGathering(t *testing.T) {
	p := testPlan(t)
	for _, method := range []string{"Rules", "Routes", "LinkIndex"} {
		h := healthyHost(p)
		h.kernel.fail[method] = errors.New("netlink: operation not permitted")
		if _, err := Verify(context.Background(), p, h.expect, h.sources()); err == nil {
			t.Errorf("%s failing: no error", method)
		}
	}
}
