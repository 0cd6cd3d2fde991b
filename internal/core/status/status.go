// Package status is what `symroute status` shows: per interface, the link's state, its addresses, the tables and
// rules that route its replies, the effective rp_filter, the .network file networkd applied and a verdict. It is
// pure: the orchestration layer gathers a Snapshot, Build turns it into a Report, and Render prints the report as
// text, JSON or YAML.
package status

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/routing"
)

// Snapshot is what status reads from the host.
type Snapshot struct {
	// Description names the description that was read, and Plan and Result are its plan and verify's comparison
	// of it with the live state; all three are empty on a host without a description.
	Description string
	Plan        *plan.Plan
	Result      *drift.Result
	// Links are every link the kernel has, and Addresses their addresses by link index.
	Links     []routing.Link
	Addresses map[int][]routing.Address
	Rules     []routing.Rule
	// Routes holds the routes of the tables TablesWanted names, by table id.
	Routes map[uint32][]routing.Route
	// RPFilter holds net.ipv4.conf.all.rp_filter under "all" and each link's under its name; a value that could
	// not be read is absent.
	RPFilter map[string]int
	// Networkd is networkd's view of each link by name; nil when networkd did not answer.
	Networkd map[string]NetworkdLink
	// Notes say what could not be read.
	Notes []string
}

// NetworkdLink is what networkd says of a link.
type NetworkdLink struct {
	State       string // AdministrativeState: configured, unmanaged, configuring...
	NetworkFile string
	Dropins     []string
	// DropinsFrom says who listed the drop-ins: networkd itself, or the configuration directories where networkd
	// does not say (252 does not).
	DropinsFrom string
}

// Where a link's drop-ins were listed from.
const (
	FromNetworkd = "networkd"
	FromFiles    = "files"
)

// Report is what status shows, in the order it shows it. Its field names are part of symroute's interface
// (-o json, -o yaml): they are documented in the README and only ever added to.
type Report struct {
	// Description is the description's path; empty without one.
	Description string `json:"description" yaml:"description"`
	// Verdict is "ok", "drift" or "no description".
	Verdict    string      `json:"verdict" yaml:"verdict"`
	Interfaces []Interface `json:"interfaces" yaml:"interfaces"`
	// Findings are verify's findings that concern no one interface (a foreign rule, the connection-mark table).
	Findings []drift.Finding `json:"findings" yaml:"findings"`
	Notes    []string        `json:"notes" yaml:"notes"`
}

// Verdicts.
const (
	OK            = "ok"
	Drift         = "drift"
	NoDescription = "no description"
)

// Interface is one interface's status.
type Interface struct {
	Name string `json:"name" yaml:"name"`
	// Index is the link's ifindex, 0 when it does not exist; State is the kernel's operational state (up, down,
	// lower-layer-down...), or "missing".
	Index int    `json:"index" yaml:"index"`
	State string `json:"state" yaml:"state"`
	// Described says the description names the interface.
	Described bool      `json:"described" yaml:"described"`
	Addresses []Address `json:"addresses" yaml:"addresses"`
	// Tables are the routing tables of the interface's rules, its planned table first.
	Tables []Table `json:"tables" yaml:"tables"`
	// Rules are the rules that select the interface's traffic: by input interface, by one of its addresses,
	// or (with a description) by looking up its table.
	Rules []Rule `json:"rules" yaml:"rules"`
	// RPFilter is nil when it could not be read, Networkd when networkd did not answer.
	RPFilter *RPFilter `json:"rp_filter" yaml:"rp_filter"`
	Networkd *Networkd `json:"networkd" yaml:"networkd"`
	// Verdict is "ok", "drift" (Findings says what) or "no description".
	Verdict  string          `json:"verdict" yaml:"verdict"`
	Findings []drift.Finding `json:"findings" yaml:"findings"`
}

// Address is an address on the link: a dynamic one (a lease's, an advertisement's) with the seconds it stays
// valid.
type Address struct {
	Address      string  `json:"address" yaml:"address"`
	Dynamic      bool    `json:"dynamic" yaml:"dynamic"`
	ValidSeconds *uint32 `json:"valid_seconds,omitempty" yaml:"valid_seconds,omitempty"`
}

// Table is a routing table; Routes is nil for the tables status does not count (main, local, default: on a
// BGP-fed node main alone can hold a million routes).
type Table struct {
	ID     uint32 `json:"id" yaml:"id"`
	Name   string `json:"name" yaml:"name"`
	Routes *int   `json:"routes" yaml:"routes"`
}

// Rule is a routing-policy rule: its priority, what it selects as ip rule writes it, and the table it looks up
// (0 for a rule that does something else, such as blackhole).
type Rule struct {
	Priority uint32 `json:"priority" yaml:"priority"`
	Selector string `json:"selector" yaml:"selector"`
	// Action is what the rule does, as ip rule writes it: "lookup 1000001", "lookup main suppress_prefixlength
	// 0", "blackhole", "goto 110".
	Action string `json:"action" yaml:"action"`
	Table  uint32 `json:"table" yaml:"table"`
	Family string `json:"family" yaml:"family"`
}

// RPFilter is the rp_filter in effect on the link, the larger of all's and the link's own.
type RPFilter struct {
	Effective string `json:"effective" yaml:"effective"`
	All       int    `json:"all" yaml:"all"`
	Interface int    `json:"interface" yaml:"interface"`
	// Why says both values: "strict (all=0, eth-b=1)".
	Why string `json:"why" yaml:"why"`
}

// Networkd is what networkd says of the link: its setup state and the .network file and drop-ins it applied.
type Networkd struct {
	State       string   `json:"state" yaml:"state"`
	NetworkFile string   `json:"network_file" yaml:"network_file"`
	Dropins     []string `json:"dropins" yaml:"dropins"`
	// DropinsFrom is "networkd" when networkd listed the drop-ins, "files" when status found them in networkd's
	// configuration directories because networkd does not list them (252).
	DropinsFrom string `json:"dropins_from" yaml:"dropins_from"`
}

// uncounted are the kernel's own tables, whose routes status does not count.
func uncounted(table uint32) bool { return table == 253 || table == 254 || table == 255 }

// subject is an interface status shows, before its facts are read from the snapshot.
type subject struct {
	name  string
	ifc   *plan.Interface // nil without a description
	link  *routing.Link   // nil when the link does not exist
	addrs []routing.Address
}

func (s Snapshot) subjects() []subject {
	var out []subject
	if s.Plan != nil {
		for i := range s.Plan.Interfaces {
			ifc := &s.Plan.Interfaces[i]
			sub := subject{name: ifc.Name, ifc: ifc}
			if j := slices.IndexFunc(s.Links, func(l routing.Link) bool { return l.Name == ifc.Name }); j >= 0 {
				sub.link = &s.Links[j]
				sub.addrs = s.Addresses[sub.link.Index]
			}
			out = append(out, sub)
		}
		return out
	}
	links := slices.Clone(s.Links)
	slices.SortFunc(links, func(a, b routing.Link) int { return cmp.Compare(a.Index, b.Index) })
	for i := range links {
		if links[i].Loopback {
			continue
		}
		out = append(out, subject{name: links[i].Name, link: &links[i], addrs: s.Addresses[links[i].Index]})
	}
	return out
}

// selects reports whether rule r takes the traffic of sub: it names sub as its input interface, selects one of
// sub's addresses as its source, or looks up sub's planned table.
func (sub subject) selects(r routing.Rule) bool {
	if r.Iif == sub.name || sub.ifc != nil && r.Table == sub.ifc.Table && r.Action == routing.ActionLookup {
		return true
	}
	// A "not from" rule takes everything but those sources: it selects no address of sub's by them.
	if !r.From.IsValid() || r.From.Bits() == 0 || r.Invert {
		return false
	}
	for _, a := range sub.addresses() {
		if r.From.Contains(a) {
			return true
		}
	}
	return false
}

// addresses are sub's live addresses and, with a description, its planned ones.
func (sub subject) addresses() []netip.Addr {
	var out []netip.Addr
	for _, a := range sub.addrs {
		out = append(out, a.Prefix.Addr())
	}
	if sub.ifc != nil {
		for _, p := range sub.ifc.Addresses {
			out = append(out, p.Addr())
		}
	}
	return out
}

// TablesWanted names the tables whose routes status counts, given a snapshot with its plan, links, addresses and
// rules: each interface's planned table and the tables of the rules that select it, but the kernel's own.
func (s Snapshot) TablesWanted() []uint32 {
	var out []uint32
	add := func(t uint32) {
		if !uncounted(t) && t != 0 && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, sub := range s.subjects() {
		if sub.ifc != nil {
			add(sub.ifc.Table)
		}
		for _, r := range s.Rules {
			if sub.selects(r) && r.Action == routing.ActionLookup {
				add(r.Table)
			}
		}
	}
	return out
}

// Build makes the report of a snapshot.
func Build(s Snapshot) Report {
	rep := Report{Description: s.Description, Verdict: NoDescription, Interfaces: []Interface{}, Findings: []drift.Finding{}, Notes: slices.Clone(s.Notes)}
	if rep.Notes == nil {
		rep.Notes = []string{}
	}
	if s.Result != nil {
		rep.Verdict = OK
		if !s.Result.OK() {
			rep.Verdict = Drift
		}
		for _, f := range s.Result.Findings {
			if f.Interface == "" || s.Plan == nil || !slices.ContainsFunc(s.Plan.Interfaces, func(i plan.Interface) bool { return i.Name == f.Interface }) {
				rep.Findings = append(rep.Findings, f)
			}
		}
		for _, n := range s.Result.Notes {
			if !slices.Contains(rep.Notes, n) {
				rep.Notes = append(rep.Notes, n)
			}
		}
	}
	for _, sub := range s.subjects() {
		rep.Interfaces = append(rep.Interfaces, s.build(sub))
	}
	return rep
}

func (s Snapshot) build(sub subject) Interface {
	out := Interface{Name: sub.name, State: "missing", Described: sub.ifc != nil, Addresses: []Address{}, Tables: []Table{}, Rules: []Rule{},
		Verdict: NoDescription, Findings: []drift.Finding{}}
	if sub.link != nil {
		out.Index, out.State = sub.link.Index, sub.link.OperState
	}
	for _, a := range sub.addrs {
		if !a.Prefix.Addr().IsGlobalUnicast() {
			continue // link-local: every link has one, and no rule selects it
		}
		ad := Address{Address: a.Prefix.String(), Dynamic: a.Dynamic}
		if a.Dynamic {
			ad.ValidSeconds = &a.ValidSeconds
		}
		out.Addresses = append(out.Addresses, ad)
	}
	var tables []uint32
	if sub.ifc != nil {
		tables = append(tables, sub.ifc.Table)
	}
	rules := slices.Clone(s.Rules)
	slices.SortStableFunc(rules, func(a, b routing.Rule) int { return cmp.Compare(a.Priority, b.Priority) })
	for _, r := range rules {
		if !sub.selects(r) {
			continue
		}
		rule := Rule{Priority: r.Priority, Selector: r.Selector(), Action: r.Does(), Family: "ipv4"}
		if r.Family == routing.FamilyV6 {
			rule.Family = "ipv6"
		}
		if r.Action == routing.ActionLookup {
			rule.Table = r.Table
			if !slices.Contains(tables, r.Table) {
				tables = append(tables, r.Table)
			}
		}
		out.Rules = append(out.Rules, rule)
	}
	for _, t := range tables {
		table := Table{ID: t, Name: routing.TableName(t)}
		if sub.ifc != nil && t == sub.ifc.Table {
			table.Name = sub.ifc.TableName
		}
		if routes, read := s.Routes[t]; read && !uncounted(t) {
			n := len(routes)
			table.Routes = &n
		}
		out.Tables = append(out.Tables, table)
	}
	if all, ok := s.RPFilter["all"]; ok {
		if v, ok := s.RPFilter[sub.name]; ok {
			out.RPFilter = EffectiveRPFilter(sub.name, all, v)
		}
	}
	if l, ok := s.Networkd[sub.name]; ok {
		out.Networkd = &Networkd{State: l.State, NetworkFile: l.NetworkFile, Dropins: slices.Clone(l.Dropins), DropinsFrom: l.DropinsFrom}
		if out.Networkd.Dropins == nil {
			out.Networkd.Dropins = []string{}
		}
	}
	if s.Result != nil && sub.ifc != nil {
		out.Verdict = OK
		for _, f := range s.Result.Findings {
			if f.Interface == sub.name {
				out.Verdict = Drift
				out.Findings = append(out.Findings, f)
			}
		}
	}
	return out
}

// EffectiveRPFilter is the rp_filter the kernel applies on link name: the larger of all's and the link's, where
// off (0) < strict (1) < loose (2).
func EffectiveRPFilter(name string, all, own int) *RPFilter {
	eff := description.EffectiveRPFilter(all, own).String()
	return &RPFilter{Effective: eff, All: all, Interface: own, Why: fmt.Sprintf("%s (all=%d, %s=%d)", eff, all, name, own)}
}

// Only keeps the interface called name, and the findings that concern no one interface; the verdict is then
// theirs. ok is false when the report has no such interface.
func (r Report) Only(name string) (Report, bool) {
	i := slices.IndexFunc(r.Interfaces, func(ifc Interface) bool { return ifc.Name == name })
	if i < 0 {
		return r, false
	}
	r.Interfaces = r.Interfaces[i : i+1]
	if r.Verdict != NoDescription {
		r.Verdict = r.Interfaces[0].Verdict
		if len(r.Findings) > 0 {
			r.Verdict = Drift
		}
	}
	return r, true
}

// Names lists the report's interfaces.
func (r Report) Names() []string {
	var out []string
	for _, ifc := range r.Interfaces {
		out = append(out, ifc.Name)
	}
	return out
}
