package description

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/report"
	_ "github.com/symroute/symroute/internal/tools/golden"
)

// where renders an entry as "line:col path severity", the parts a user navigates by.
func where(e report.Entry) string {
	return fmt.Sprintf("%d:%d %s %s", e.Pos.Line, e.Pos.Column, e.Path, e.Severity)
}

// TestReportLines asserts the line, column and path of each problem, for problems found while decoding and for
// problems found by cross-checks after it, in one run.
func TestReportLines(t *testing.T) {
	src := `version: 1
cluster_cidrs: [10.244.0.1/16]
interfaces:
  - name: eth-a
    addresses: [192.168.1.10/24]
    gateway: 192.168.9.1
    default_route: true
  - name: eth-b
    addresses:
      - 10.0.0.1/24
      - 192.168.1.10/24
    default_route: true
    bogus: 1
`
	_, rep := Parse([]byte(src))
	var got []string
	for _, e := range rep.Entries {
		got = append(got, where(e))
	}
	want := []string{
		"2:17 cluster_cidrs[0] error",             // host bits set
		"13:5 interfaces[1].bogus error",          // unknown key
		"6:14 interfaces[0].gateway error",        // outside the subnet
		"11:9 interfaces[1].addresses[1] error",   // duplicate address
		"12:20 interfaces[1].default_route error", // second default route
		"12:20 interfaces[1].default_route error", // ... with no gateway
		"11:9 interfaces[1].addresses[1] warning", // overlapping subnet
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseValid(t *testing.T) {
	src := `version: 1
cni: [Calico]
cluster_cidrs: [10.244.0.0/16, "fd00::/64"]
table_range: {min: 5000000, max: 5000999}
rp_filter_all: off
interfaces:
  - name: eth-a
    match: {permanent_mac: "02:00:00:AA:BB:01"}
    mode: drop-in
    addresses: [192.168.1.10/24, 2001:db8::10/64]
    gateway: 192.168.1.1
    gateway6: fe80::1
    default_route: true
    table: 7
    priority: 30
    rp_filter: strict
`
	h, rep := Parse([]byte(src))
	if len(rep.Entries) != 0 {
		t.Fatalf("unexpected problems: %+v", rep.Entries)
	}
	ifc := h.Interfaces[0]
	checks := map[string][2]any{
		"component":     {h.Components[0].Name, "calico"},
		"cluster cidrs": {len(h.ClusterCIDRs), 2},
		"table range":   {h.Tables.String(), "5000000-5000999"},
		"rp_filter_all": {*h.RPFilterAll, RPFilterOff},
		"mac":           {ifc.PermanentMAC.String(), "02:00:00:aa:bb:01"},
		"mode":          {ifc.Mode, ModeDropIn},
		"address":       {ifc.Addresses[1], netip.MustParsePrefix("2001:db8::10/64")},
		"gateway6":      {ifc.Gateway6, netip.MustParseAddr("fe80::1")},
		"default route": {ifc.DefaultRoute, true},
		"table":         {*ifc.Table, uint32(7)},
		"priority":      {*ifc.Priority, uint32(30)},
		"rp_filter":     {ifc.RPFilter, RPFilterStrict},
		"default prio":  {h.Priorities.String(), "20000-29999"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: got %v, want %v", name, c[0], c[1])
		}
	}
}

func TestDefaults(t *testing.T) {
	h, rep := Parse([]byte("version: 1\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24]}]\n"))
	if rep.HasErrors(true) {
		t.Fatalf("%+v", rep.Entries)
	}
	if ifc := h.Interfaces[0]; ifc.Mode != ModeOwn || ifc.RPFilter != RPFilterLoose || ifc.Table != nil || ifc.Priority != nil {
		t.Errorf("defaults: %+v", ifc)
	}
}

// TestAnchorsResolve: YAML anchors are a common way to share an address list; they must decode like the
// written-out value.
func TestAnchorsResolve(t *testing.T) {
	src := "version: 1\nx-gw: &gw 10.0.0.254\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24], gateway: *gw}]\n"
	_, rep := Parse([]byte(src))
	// x-gw itself is an unknown key: anchors must live under a known key or not at all.
	if len(rep.Entries) != 1 || rep.Entries[0].Path.String() != "x-gw" {
		t.Fatalf("%+v", rep.Entries)
	}
	src = "version: 1\ninterfaces:\n  - &a {name: eth0, addresses: [10.0.0.1/24], gateway: 10.0.0.254}\n  - {name: eth1, addresses: [10.0.1.1/24]}\n"
	h, rep := Parse([]byte(src))
	if rep.HasErrors(false) || h.Interfaces[0].Gateway.String() != "10.0.0.254" {
		t.Fatalf("%+v", rep.Entries)
	}
}

// TestDidYouMean: a mistyped component, key, mode or rp_filter value gets the nearest right one; a word near
// none gets the list alone.
func TestDidYouMean(t *testing.T) {
	src := `version: 1
cni: [cilum, Calcio, frobnicator]
interfaces:
  - name: eth0
    adresses: [10.0.0.1/24]
    mode: dropin
    rp_filter: stric
`
	_, rep := Parse([]byte(src))
	var got []string
	for _, e := range rep.Entries {
		got = append(got, e.Path.String()+": "+strings.SplitN(e.Message, "?)", 2)[0])
	}
	want := []string{
		`cni[0]: unknown component "cilum" (did you mean cilium`,
		`cni[1]: unknown component "Calcio" (did you mean calico`,
		`cni[2]: unknown component "frobnicator"; symroute knows amazon-ec2-net-utils, antrea, aws-vpc-cni, calico, cilium, docker, flannel, gke-netd, istio, kube-proxy, kube-router, linkerd, metallb, multus, networkmanager, suse-cloud-netconfig, tailscale, vmware-cloud-network-setup, weave-net, wg-quick (leave it out if it claims no tables, priorities or marks)`,
		`interfaces[0].adresses: unknown key "adresses" (did you mean addresses`,
		`interfaces[0].mode: must be own (symroute writes the link's .network file) or drop-in (another .network file configures the link), not "dropin" (did you mean drop-in`,
		`interfaces[0].rp_filter: must be strict, loose or off, not "stric" (did you mean strict`,
		`interfaces[0].addresses: is missing; list the interface's addresses with prefix length, e.g. [192.168.1.10/24], or set dhcp4: true or accept_ra: true when they come from DHCP or router advertisements`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestVersionWrittenWrong: a quoted or missing version says how to write it and hides no other problem; a
// description of another version gets that one error.
func TestVersionWrittenWrong(t *testing.T) {
	for _, c := range []struct {
		src  string
		want []string
	}{
		{"version: \"1\"\ninterfaces: [{name: eth0, addresses: [10.0.0.1]}]\ntable_range: {min: \"5\", max: 9}\n", []string{
			`1:10 version: "1" is in quotes, so YAML reads it as text, not a number: write version: 1, without quotes`,
			`2:39 interfaces[0].addresses[0]: "10.0.0.1" has no prefix length; write the address as the interface carries it, e.g. 10.0.0.1/24`,
			`3:20 table_range.min: "5" is in quotes, so YAML reads it as text, not a number: write min: 5, without quotes`,
		}},
		{"interfaces: [{name: eth0, addresses: [10.0.0.1/24], bogus: 1}]\n", []string{
			`1:1 version: is missing; start the description with "version: 1"`,
			`1:53 interfaces[0].bogus: unknown key "bogus"; the keys allowed here are accept_ra, addresses, default_route, dhcp4, gateway, gateway6, match, mode, name, priority, rp_filter, table, track_connections`,
		}},
		{"version: '2'\ninterfaces: whatever\n", []string{
			`1:10 version: "2" is in quotes, so YAML reads it as text, not a number: write version: 2, without quotes`,
		}},
		{"version: 2\ninterfaces: whatever\n", []string{
			`1:10 version: version 2 is not supported; this symroute reads version 1 descriptions (upgrade symroute, or write version: 1)`,
		}},
	} {
		_, rep := Parse([]byte(c.src))
		var got []string
		for _, e := range rep.Entries {
			got = append(got, fmt.Sprintf("%d:%d %s: %s", e.Pos.Line, e.Pos.Column, e.Path, e.Message))
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%q:\n%s\nwant:\n%s", c.src, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

// TestYAML11Spellings: YAML 1.1's ways to write a boolean are read as YAML 1.1 reads them where symroute takes
// one (default_route), and its ways to write false as off for rp_filter; a way to write true gets asked which
// of strict and loose it means, and a sysctl number gets its name.
func TestYAML11Spellings(t *testing.T) {
	base := "version: 1\ninterfaces:\n  - {name: eth0, addresses: [10.0.0.1/24], gateway: 10.0.0.254, "
	for _, c := range []struct {
		value string
		check func(Interface) bool
	}{
		{"rp_filter: off}", func(i Interface) bool { return i.RPFilter == RPFilterOff }},
		{"rp_filter: no}", func(i Interface) bool { return i.RPFilter == RPFilterOff }},
		{"rp_filter: false}", func(i Interface) bool { return i.RPFilter == RPFilterOff }},
		{"rp_filter: OFF}", func(i Interface) bool { return i.RPFilter == RPFilterOff }},
		{"rp_filter: strict}", func(i Interface) bool { return i.RPFilter == RPFilterStrict }},
		{"default_route: yes}", func(i Interface) bool { return i.DefaultRoute }},
		{"default_route: On}", func(i Interface) bool { return i.DefaultRoute }},
		{"default_route: true}", func(i Interface) bool { return i.DefaultRoute }},
		{"default_route: n}", func(i Interface) bool { return !i.DefaultRoute }},
	} {
		h, rep := Parse([]byte(base + c.value + "\n"))
		if rep.HasErrors(false) || !c.check(h.Interfaces[0]) {
			t.Errorf("%s: %+v %+v", c.value, rep.Entries, h)
		}
	}
	for value, want := range map[string]string{
		"rp_filter: on}":       `"on" turns rp_filter on, and it has two ways on: write strict or loose`,
		"rp_filter: true}":     `"true" turns rp_filter on, and it has two ways on: write strict or loose`,
		"rp_filter: 1}":        "must be strict, loose or off, not the sysctl's number 1: write strict",
		"rp_filter: 2}":        "must be strict, loose or off, not the sysctl's number 2: write loose",
		"default_route: 1}":    `must be true or false, not "1"`,
		"default_route: sure}": `must be true or false, not "sure"`,
	} {
		_, rep := Parse([]byte(base + value + "\n"))
		if len(rep.Entries) != 1 || rep.Entries[0].Message != want {
			t.Errorf("%s: %+v, want %q", value, rep.Entries, want)
		}
	}
}

// TestOverlapWarnings: each overlapping pair of subnets is reported once, at the later interface, whichever of
// the two is the wider; subnets within one interface are not compared.
func TestOverlapWarnings(t *testing.T) {
	src := `version: 1
interfaces:
  - name: a
    addresses: [10.0.0.1/24, 10.0.0.2/24, 10.0.0.3/25]
  - name: b
    addresses: [10.0.0.10/16, 10.0.0.11/16, 192.168.0.1/24]
  - name: c
    addresses: [192.168.0.130/25, 2001:db8::1/64]
  - name: d
    addresses: [2001:db8::2/48]
`
	_, rep := Parse([]byte(src))
	var got []string
	for _, e := range rep.Entries {
		got = append(got, e.Path.String()+" "+strings.SplitN(e.Message, ": traffic", 2)[0])
	}
	want := []string{
		"interfaces[1].addresses[0] subnet 10.0.0.0/16 overlaps a's 10.0.0.0/24",
		"interfaces[1].addresses[0] subnet 10.0.0.0/16 overlaps a's 10.0.0.0/25",
		"interfaces[2].addresses[0] subnet 192.168.0.128/25 overlaps b's 192.168.0.0/24",
		"interfaces[3].addresses[0] subnet 2001:db8::/48 overlaps c's 2001:db8::/64",
	}
	slices.Sort(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAddressesFromTheNode: with FromNode, an interface may leave its addresses out. Checked for every node at
// once, nothing that depends on them is checked; on one node they are that node's link's, and the gateway is
// checked against them there, at its line; a node whose link has no address is told so at the interface.
func TestAddressesFromTheNode(t *testing.T) {
	policy := []byte(`version: 1
interfaces:
  - name: eth-a
    addresses: [192.168.1.10/24]
    gateway: 192.168.1.1
  - name: eth-b
    gateway: 10.0.0.254
`)
	if _, rep := Parse(policy); !rep.HasErrors(false) {
		t.Fatal("without FromNode a missing addresses list must stay an error")
	}
	h, rep := ParseWith(policy, Options{FromNode: true})
	if rep.HasErrors(false) || !h.Interfaces[1].AddressesFromNode || len(h.Interfaces[1].Addresses) != 0 {
		t.Fatalf("policy: %+v %+v", rep.Entries, h.Interfaces[1])
	}
	node := map[string][]netip.Prefix{"eth-a": {netip.MustParsePrefix("10.9.9.9/24")}, "eth-b": {netip.MustParsePrefix("10.0.0.7/24")}}
	h, rep = ParseWith(policy, Options{FromNode: true, Node: node})
	if rep.HasErrors(false) || len(h.Interfaces[1].Addresses) != 1 || h.Interfaces[1].Addresses[0] != node["eth-b"][0] {
		t.Fatalf("node: %+v %+v", rep.Entries, h.Interfaces[1])
	}
	if len(h.Interfaces[0].Addresses) != 1 || h.Interfaces[0].Addresses[0].String() != "192.168.1.10/24" {
		t.Errorf("listed addresses were replaced by the node's: %v", h.Interfaces[0].Addresses)
	}
	// Another node, whose eth-b is on a subnet the gateway is not in.
	node["eth-b"] = []netip.Prefix{netip.MustParsePrefix("10.1.0.7/24")}
	if _, rep = ParseWith(policy, Options{FromNode: true, Node: node}); !strings.Contains(fmt.Sprint(rep.Entries), "interfaces[1].gateway") {
		t.Errorf("a gateway outside the node's subnet: %+v", rep.Entries)
	}
	delete(node, "eth-b")
	_, rep = ParseWith(policy, Options{FromNode: true, Node: node})
	if got := fmt.Sprint(rep.Entries); !strings.Contains(got, "this node's eth-b has no global address") || !rep.HasErrors(false) {
		t.Errorf("a node without the address: %s", got)
	}
}
