package status

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/routing"
	_ "github.com/symroute/symroute/internal/tools/golden"
	"github.com/symroute/symroute/internal/tools/plantest"
)

// twoNIC is the site's host with strict rp_filter on eth-b.
const twoNIC = plantest.TwoNIC + "    rp_filter: strict\n"

var pfx = netip.MustParsePrefix

// links is a host's links: lo, the two NICs, and a third no description names.
func links() []routing.Link {
	return []routing.Link{
		{Index: 1, Name: "lo", Loopback: true, OperState: "unknown"},
		{Index: 3, Name: "eth-b", Up: true, OperState: "up"},
		{Index: 2, Name: "eth-a", Up: true, OperState: "up"},
		{Index: 4, Name: "eth-c", OperState: "down"},
	}
}

func addresses() map[int][]routing.Address {
	return map[int][]routing.Address{
		1: {{Prefix: pfx("127.0.0.1/8")}},
		2: {{Prefix: pfx("192.168.1.10/24")}, {Prefix: pfx("fe80::1/64")}},
		3: {{Prefix: pfx("10.0.0.1/24")}, {Prefix: pfx("10.0.0.7/24"), Dynamic: true, ValidSeconds: 3725}},
		4: {{Prefix: pfx("172.16.0.5/24")}},
	}
}

// described is the snapshot of the two-NIC host with its description, where eth-b's rp_filter drifted.
func described(t *testing.T) Snapshot {
	p := plantest.Build(t, twoNIC)
	res := drift.Result{Findings: []drift.Finding{
		{Kind: drift.RPFilterWrong, Interface: "eth-b", Message: "effective rp_filter of eth-b is loose (the larger of all=2 and eth-b=1), want strict", Expected: "strict", Actual: "loose"},
		{Kind: drift.RuleForeign, Message: "rule 20010: from 192.168.1.99 lookup 7 takes priority 20010"},
	}}
	s := Snapshot{Description: "/etc/symroute/host.yaml", Plan: p, Result: &res, Links: links(), Addresses: addresses(),
		RPFilter: map[string]int{"all": 2, "eth-a": 2, "eth-b": 1, "eth-c": 0},
		Networkd: map[string]NetworkdLink{"eth-a": {State: "configured", NetworkFile: "/etc/systemd/network/10-symroute-eth-a.network"},
			"eth-b": {State: "configured", NetworkFile: "/run/systemd/network/10-netplan-eth-b.network", Dropins: []string{"/etc/systemd/network/10-netplan-eth-b.network.d/90-symroute.conf"}}}}
	for _, ifc := range p.Interfaces {
		for _, r := range ifc.Rules {
			s.Rules = append(s.Rules, routing.Rule{Family: routing.FamilyV4, Priority: r.Priority, From: r.From, Table: r.Table, Action: routing.ActionLookup})
		}
	}
	s.Rules = append(s.Rules,
		routing.Rule{Family: routing.FamilyV4, Priority: 0, Table: 255, Action: routing.ActionLookup},
		routing.Rule{Family: routing.FamilyV4, Priority: 32766, Table: 254, Action: routing.ActionLookup},
		routing.Rule{Family: routing.FamilyV4, Priority: 100, Iif: "eth-c", Table: 77, Action: routing.ActionLookup},
		routing.Rule{Family: routing.FamilyV4, Priority: 20010, From: pfx("192.168.1.99/32"), Table: 7, Action: routing.ActionLookup})
	s.Routes = map[uint32][]routing.Route{}
	for _, t := range s.TablesWanted() {
		s.Routes[t] = make([]routing.Route, int(t%1000)+1)
	}
	return s
}

// TestDescribedInterfaces: with a description, status shows the described interfaces in its order, each with its
// planned table and the rules that look it up, the effective rp_filter and why, networkd's file and drop-ins, and
// verify's verdict; a finding of no one interface stays the host's.
func TestDescribedInterfaces(t *testing.T) {
	s := described(t)
	if got := s.TablesWanted(); !slices.Equal(got, []uint32{1000000, 1000001}) {
		t.Errorf("tables wanted %v", got)
	}
	r := Build(s)
	if got := strings.Join(r.Names(), " "); got != "eth-a eth-b" || r.Verdict != Drift {
		t.Fatalf("interfaces %q, verdict %s", got, r.Verdict)
	}
	a, b := r.Interfaces[0], r.Interfaces[1]
	if a.Index != 2 || a.State != "up" || !a.Described || len(a.Tables) != 1 || a.Tables[0].ID != 1000000 || a.Tables[0].Name != "symroute-eth-a" || *a.Tables[0].Routes != 1 {
		t.Errorf("eth-a: %+v", a)
	}
	if len(a.Rules) != 1 || a.Rules[0].Priority != 20010 || a.Rules[0].Selector != "from 192.168.1.10" || a.Rules[0].Table != 1000000 {
		t.Errorf("eth-a's rules: %+v", a.Rules)
	}
	if len(a.Addresses) != 1 || a.Addresses[0].Address != "192.168.1.10/24" || a.Addresses[0].Dynamic {
		t.Errorf("eth-a's addresses (link-local left out): %+v", a.Addresses)
	}
	if a.Verdict != OK || b.Verdict != Drift || len(b.Findings) != 1 || b.Findings[0].Expected != "strict" {
		t.Errorf("verdicts %s %s, eth-b's findings %+v", a.Verdict, b.Verdict, b.Findings)
	}
	if b.RPFilter == nil || b.RPFilter.Why != "loose (all=2, eth-b=1)" {
		t.Errorf("eth-b's rp_filter %+v", b.RPFilter)
	}
	if b.Networkd == nil || b.Networkd.NetworkFile != "/run/systemd/network/10-netplan-eth-b.network" || len(b.Networkd.Dropins) != 1 {
		t.Errorf("eth-b's networkd %+v", b.Networkd)
	}
	if d := b.Addresses[1]; !d.Dynamic || d.ValidSeconds == nil || *d.ValidSeconds != 3725 {
		t.Errorf("eth-b's lease %+v", d)
	}
	if len(r.Findings) != 1 || r.Findings[0].Kind != drift.RuleForeign {
		t.Errorf("host findings %+v", r.Findings)
	}
	one, ok := r.Only("eth-a")
	if !ok || len(one.Interfaces) != 1 || one.Verdict != Drift {
		t.Errorf("Only(eth-a): %+v", one) // the foreign rule still concerns eth-a's traffic
	}
	if _, ok := r.Only("eth-c"); ok {
		t.Errorf("Only found eth-c, which the description does not name")
	}
}

// TestUndescribedHost: without a description, every link but lo, by index, with the rules that select it by
// input interface or source address and the tables they look up; main's routes are not counted.
func TestUndescribedHost(t *testing.T) {
	s := Snapshot{Links: links(), Addresses: addresses(), RPFilter: map[string]int{"all": 0, "eth-a": 1, "eth-b": 2},
		Rules: []routing.Rule{
			{Family: routing.FamilyV4, Priority: 0, Table: 255, Action: routing.ActionLookup},
			{Family: routing.FamilyV4, Priority: 100, From: pfx("192.168.1.0/24"), Table: 100, Action: routing.ActionLookup},
			{Family: routing.FamilyV4, Priority: 90, Iif: "eth-c", Table: 254, Action: routing.ActionLookup},
			{Family: routing.FamilyV4, Priority: 95, From: pfx("172.16.0.5/32"), Action: 6},
			// "not from" eth-b's address: it takes everything but eth-b's replies, so it is not eth-b's rule.
			{Family: routing.FamilyV4, Priority: 96, From: pfx("10.0.0.1/32"), Invert: true, Table: 101, Action: routing.ActionLookup},
			{Family: routing.FamilyV4, Priority: 97, From: pfx("192.168.1.10/32"), Table: 100, SuppressDefault: true, Action: routing.ActionLookup},
			{Family: routing.FamilyV4, Priority: 32766, Table: 254, Action: routing.ActionLookup},
		}}
	if got := s.TablesWanted(); !slices.Equal(got, []uint32{100}) {
		t.Errorf("tables wanted %v", got)
	}
	s.Routes = map[uint32][]routing.Route{100: make([]routing.Route, 2)}
	r := Build(s)
	if got := strings.Join(r.Names(), " "); got != "eth-a eth-b eth-c" || r.Verdict != NoDescription {
		t.Fatalf("interfaces %q, verdict %s", got, r.Verdict)
	}
	a, b, c := r.Interfaces[0], r.Interfaces[1], r.Interfaces[2]
	if len(a.Rules) != 2 || a.Rules[0].Table != 100 || len(a.Tables) != 1 || *a.Tables[0].Routes != 2 || a.Verdict != NoDescription || a.Described {
		t.Errorf("eth-a: %+v", a)
	}
	if got := a.Rules[0].Selector + " " + a.Rules[0].Action; got != "from 192.168.1.10 lookup 100 suppress_prefixlength 0" {
		t.Errorf("eth-a's suppress rule reads %q", got)
	}
	if len(b.Rules) != 0 || len(b.Tables) != 0 || b.RPFilter.Effective != "loose" || b.Networkd != nil {
		t.Errorf("eth-b: %+v", b)
	}
	if len(c.Rules) != 2 || c.Rules[0].Priority != 90 || c.Rules[1].Table != 0 || len(c.Tables) != 1 || c.Tables[0].Name != "main" || c.Tables[0].Routes != nil || c.RPFilter != nil {
		t.Errorf("eth-c: %+v", c)
	}
}

func TestEffectiveRPFilter(t *testing.T) {
	for _, c := range []struct {
		all, own int
		want     string
	}{{0, 0, "off (all=0, eth-b=0)"}, {0, 1, "strict (all=0, eth-b=1)"}, {1, 0, "strict (all=1, eth-b=0)"}, {2, 1, "loose (all=2, eth-b=1)"}, {1, 2, "loose (all=1, eth-b=2)"}} {
		if got := EffectiveRPFilter("eth-b", c.all, c.own).Why; got != c.want {
			t.Errorf("all=%d own=%d: %q, want %q", c.all, c.own, got, c.want)
		}
	}
}

// TestTextFitsAndReads: every line of the text fits Width, however long a path, message or list; a path too long
// for its column keeps its end; the lease's time left is shown.
func TestTextFitsAndReads(t *testing.T) {
	s := described(t)
	long := "/etc/systemd/network/" + strings.Repeat("very-long-directory-name/", 6) + "10-netplan-eth-b.network"
	s.Networkd["eth-b"] = NetworkdLink{State: "configured", NetworkFile: long, Dropins: []string{long + ".d/90-symroute.conf"}}
	s.Result.Findings[0].Message = strings.Repeat("a long finding message that goes on ", 8)
	s.Result.Findings = append(s.Result.Findings, drift.Finding{Kind: drift.RuleMissing, Interface: "eth-b", Message: "rule 20020: from 10.0.0.1 lookup 1000001 is missing"})
	for i := range 30 {
		s.Addresses[2] = append(s.Addresses[2], routing.Address{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 1, byte(20 + i)}), 24)})
	}
	out, err := Render(Build(s), "text", false)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for i, line := range strings.Split(text, "\n") {
		if n := utf8.RuneCountInString(line); n > Width {
			t.Errorf("line %d has %d characters:\n%s", i+1, n, line)
		}
	}
	for _, want := range []string{
		"symroute status: drift: /etc/symroute/host.yaml\n",
		"eth-a  up  (index 2)\n",
		"  tables     1000000 symroute-eth-a (1 route)\n",
		"  rules      20010: from 192.168.1.10 lookup 1000000\n",
		"  rp_filter  loose (all=2, eth-b=1)\n",
		"  networkd   configured:\n             …",
		"10-netplan-eth-b.network\n",
		"  addresses  10.0.0.1/24\n             10.0.0.7/24 dynamic, 1h02m left\n",
		"  verdict    drift, 2 findings:\n             - a long finding message",
		"\n               finding message that goes on", // a finding's later lines hang under its text
		"[rp_filter]\n             - rule 20020: from 10.0.0.1 lookup 1000001 is missing [rule_missing]\n",
		"\nhost\n  verdict    drift: rule 20010: from 192.168.1.99 lookup 7 takes priority 20010 [rule_foreign]\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "127.0.0.1") || strings.Contains(text, "eth-c") && !strings.Contains(text, "iif eth-c") {
		t.Errorf("text shows lo or the undescribed eth-c:\n%s", text)
	}
}

// TestColourOnlyWhenAsked: no escape byte without colour; with it, the verdicts and states are coloured and the
// widths stay those of the plain text.
func TestColourOnlyWhenAsked(t *testing.T) {
	r := Build(described(t))
	plain, _ := Render(r, "text", false)
	if strings.ContainsRune(string(plain), 0x1b) {
		t.Errorf("escape bytes without colour:\n%q", plain)
	}
	coloured, _ := Render(r, "text", true)
	for _, want := range []string{red + "drift" + reset, green + "ok" + reset, green + "up" + reset, bold + "eth-a" + reset} {
		if !strings.Contains(string(coloured), want) {
			t.Errorf("coloured text lacks %q:\n%s", want, coloured)
		}
	}
	pl, co := strings.Split(string(plain), "\n"), strings.Split(string(coloured), "\n")
	if len(pl) != len(co) {
		t.Fatalf("%d lines plain, %d coloured", len(pl), len(co))
	}
	for i := range pl {
		if visible(co[i]) != utf8.RuneCountInString(pl[i]) {
			t.Errorf("line %d: %q is not %q coloured", i+1, co[i], pl[i])
		}
	}
	for _, format := range []string{"json", "yaml"} {
		if out, _ := Render(r, format, true); strings.ContainsRune(string(out), 0x1b) {
			t.Errorf("escape bytes in %s", format)
		}
	}
}

// TestJSONAndYAMLFields: the documented field names, in snake_case, and lists that are [] when empty, never null.
func TestJSONAndYAMLFields(t *testing.T) {
	s := described(t)
	s.Result.Findings = []drift.Finding{}
	out, err := Render(Build(s), "json", false)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["verdict"] != "ok" || doc["description"] != "/etc/symroute/host.yaml" {
		t.Errorf("top level: %v", doc)
	}
	if f, ok := doc["findings"].([]any); !ok || len(f) != 0 {
		t.Errorf("findings %v, want []", doc["findings"])
	}
	ifc := doc["interfaces"].([]any)[1].(map[string]any)
	var keys []string
	for k := range ifc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if got := strings.Join(keys, " "); got != "addresses described findings index name networkd rp_filter rules state tables verdict" {
		t.Errorf("interface fields: %s", got)
	}
	for _, want := range []string{`"valid_seconds": 3725`, `"network_file": "/run/systemd/network/10-netplan-eth-b.network"`, `"dropins": [`,
		`"why": "loose (all=2, eth-b=1)"`, `"priority": 20020`, `"selector": "from 10.0.0.1"`, `"table": 1000001`, `"id": 1000001`, `"findings": []`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("JSON lacks %s:\n%s", want, out)
		}
	}
	y, err := Render(Build(s), "yaml", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verdict: ok\n", "  - name: eth-a\n", "    rp_filter:\n      effective: loose\n", "valid_seconds: 3725\n", "network_file: /etc/systemd/network/10-symroute-eth-a.network\n"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("YAML lacks %q:\n%s", want, y)
		}
	}
	if _, err := Render(Build(s), "xml", false); err == nil {
		t.Errorf("Render took format xml")
	}
}

func TestLifetime(t *testing.T) {
	for s, want := range map[uint32]string{45: "45s left", 61: "1m01s left", 3725: "1h02m left", 0xffffffff: "valid forever"} {
		if got := lifetime(s); got != want {
			t.Errorf("lifetime(%d) = %q, want %q", s, got, want)
		}
	}
}
