// Package plan turns a validated host description into the routing state symroute wants: a table per interface
// holding its subnets and gateway, a "from <address>" rule per address, "to <cluster CIDR> lookup main" rules
// ahead of them, and the rp_filter sysctls. It is pure and deterministic: the same description always gives the
// same plan, and appending an interface never renumbers the others.
package plan

import (
	"fmt"
	"math/bits"
	"net/netip"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/ifname"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/report"
)

// MainTable is the kernel's main routing table (RT_TABLE_MAIN).
const MainTable = 254

// PriorityStep separates consecutive interfaces' rule priorities, leaving room for an administrator's own rules
// between them (the gap tailscale leaves between its rules, for the same reason).
const PriorityStep = 10

// TablePrefix names symroute's tables in rt_tables.d, so `ip rule` shows symroute-eth1 rather than a number.
const TablePrefix = "symroute-"

// Rule is one routing-policy rule: it selects by From, by To, or by Mark (within Mask, and by Iif when set).
type Rule struct {
	Priority uint32
	From, To netip.Prefix
	// Mark and Mask select the packets whose fwmark carries Mark in the bits of Mask; Iif narrows them to those
	// that arrived on that link.
	Mark, Mask uint32
	Iif        string
	// SuppressDefault is suppress_prefixlength 0: the lookup takes Table's routes but its default route.
	SuppressDefault bool
	// Family is 4, 6, or 0 for both; only a rule without addresses (a mark or suppress rule) sets it.
	Family int
	Table  uint32
	// Origin is where the rule comes from in the description, so drift can be reported against a YAML line.
	Origin report.Path
}

// Is6 reports whether the rule is an IPv6 rule (for a mark rule: an IPv6-only one).
func (r Rule) Is6() bool {
	if !r.From.IsValid() && !r.To.IsValid() {
		return r.Family == 6
	}
	if r.From.IsValid() {
		return r.From.Addr().Is6()
	}
	return r.To.Addr().Is6()
}

// Route is one route. A route without a Gateway is on-link (the interface's subnet); a route with a Gateway and
// no Destination is the default route.
type Route struct {
	Destination netip.Prefix
	Gateway     netip.Addr
	Table       uint32
}

// Is6 reports whether the route is an IPv6 route.
func (r Route) Is6() bool {
	if r.Destination.IsValid() {
		return r.Destination.Addr().Is6()
	}
	return r.Gateway.Is6()
}

// Interface is the plan for one interface.
type Interface struct {
	description.Interface
	// Position is the interface's index in the description; allocation is by position.
	Position    int
	Table       uint32
	TableName   string
	TableWhy    string
	Priority    uint32
	PriorityWhy string
	// TableRoutes go into the interface's own table; MainRoutes into main (own mode's default route).
	TableRoutes []Route
	MainRoutes  []Route
	Rules       []Rule
	// Mark is the value within the plan's MarkMask that the interface's tracked connections carry (0 when it
	// does not track them); MarkRules route their packets.
	Mark      uint32
	MarkRules []Rule
	// LeaseRules serve a dynamic interface (dhcp4, accept_ra), whose lease and advertisement routes networkd puts
	// into its table rather than main: the host's own traffic to those destinations looks them up there.
	LeaseRules []Rule
}

// Sysctl is one kernel parameter to set, with the reason shown in the generated file.
type Sysctl struct {
	Key, Value, Why string
}

// Plan is the whole wanted state.
type Plan struct {
	Host            *description.Host
	ClusterPriority uint32
	ClusterRules    []Rule
	Interfaces      []Interface
	Sysctls         []Sysctl
	// KeepForeign: a component is declared, so networkd must leave other programs' rules and routes alone.
	KeepForeign bool
	// MarkMask holds the fwmark and conntrack mark bits of track_connections, and MarkWhy how they were chosen;
	// 0 when no interface tracks connections. Its top bit is RequestBit: the rest hold the interfaces' values.
	MarkMask uint32
	MarkWhy  string
}

// MarkBits is how wide symroute makes the mark field when mark_mask does not pin it: seven interfaces' values
// and the request bit. Fixed, so that tracking another interface never moves the field, and with it every mark.
const MarkBits = 4

// RequestBit is the top bit of the mark field: set on a tracked connection's request as it arrives on its own
// interface, never on its replies.
func (p *Plan) RequestBit() uint32 {
	if p.MarkMask == 0 {
		return 0
	}
	return 1 << (31 - bits.LeadingZeros32(p.MarkMask))
}

// ValueMask is the field's bits that hold an interface's value.
func (p *Plan) ValueMask() uint32 { return p.MarkMask &^ p.RequestBit() }

// Tracked returns the interfaces that track connections.
func (p *Plan) Tracked() []Interface {
	var out []Interface
	for _, ifc := range p.Interfaces {
		if ifc.Mark != 0 {
			out = append(out, ifc)
		}
	}
	return out
}

// The mark rules' priorities, right after the cluster rules at priority_range.min and ahead of every source
// rule (from min + 10): a reply to a pod must still find the cluster rule first, and a reply from one of the
// host's own addresses on a connection that came in elsewhere must find its mark before its source.
const (
	// markMainOffset: a tracked connection's packet that arrived on its own interface (the request) is routed by
	// main, to the pod or local address it is for, and not straight back out.
	markMainOffset = 1
	// markTableOffset: every other packet of the connection (the replies, and rp_filter's reverse lookup of the
	// request) uses the interface's table.
	markTableOffset = 2
)

// CheckRanges reports where h's table_range and priority_range overlap the kernel's or a declared component's
// claims. Build does it too; it is exported for a description with other errors, whose plan cannot be built but
// whose ranges can still be checked, so one run reports every problem.
func CheckRanges(h *description.Host) report.Report {
	var r report.Report
	a := allocator{h: h, r: &r}
	a.checkRanges()
	return r
}

// Build plans h. The report holds allocation problems (ranges or pinned values colliding with each other, the
// kernel, or a declared component); the plan is usable only when it has no errors.
func Build(h *description.Host) (*Plan, report.Report) {
	var r report.Report
	p := &Plan{Host: h, ClusterPriority: h.Priorities.Min, KeepForeign: len(h.Components) > 0}
	a := allocator{h: h, r: &r}
	a.checkRanges()

	for i, c := range h.ClusterCIDRs {
		p.ClusterRules = append(p.ClusterRules, Rule{Priority: p.ClusterPriority, To: c, Table: MainTable, Origin: report.Path{"cluster_cidrs", i}})
	}
	for i, ifc := range h.Interfaces {
		pi := Interface{Interface: ifc, Position: i, TableName: TablePrefix + ifc.Name}
		pi.Table, pi.TableWhy = a.table(i)
		pi.Priority, pi.PriorityWhy = a.priority(i)
		pi.TableRoutes = tableRoutes(ifc, pi.Table)
		if ifc.DefaultRoute && ifc.Mode == description.ModeOwn {
			for _, gw := range []netip.Addr{ifc.Gateway, ifc.Gateway6} {
				if gw.IsValid() {
					pi.MainRoutes = append(pi.MainRoutes, Route{Gateway: gw, Table: MainTable})
				}
			}
		}
		if ifc.Dynamic() {
			pi.LeaseRules = []Rule{leaseRule(p, ifc, pi, i)}
		}
		for j, addr := range ifc.Addresses {
			pi.Rules = append(pi.Rules, Rule{
				Priority: pi.Priority,
				From:     netip.PrefixFrom(addr.Addr(), addr.Addr().BitLen()),
				Table:    pi.Table,
				Origin:   report.Path{"interfaces", i, "addresses", j},
			})
		}
		p.Interfaces = append(p.Interfaces, pi)
	}
	a.marks(p)
	a.checkCollisions(p)
	p.Sysctls = sysctls(h)
	return p, r
}

// LeasePriority is where interfaces[i]'s lease rule goes: counted down from priority_range.max by position, after
// every interface's source rules, so that a reply from any interface's address still finds its own table first
// (one placed right after its own interface's rules would take the replies of the interfaces after it to the
// lease's destinations), and stable when interfaces are appended.
func LeasePriority(h *description.Host, i int) uint32 { return h.Priorities.Max - uint32(i) }

// leaseRule gives the host's own traffic the routes networkd put into a dynamic interface's table instead of
// main (the lease's subnet above all, so the host still reaches its LAN directly), but not the table's default
// route, which is for replies and for traffic from the interface's addresses only.
func leaseRule(p *Plan, ifc description.Interface, pi Interface, i int) Rule {
	key := "dhcp4"
	if !ifc.DHCP4 {
		key = "accept_ra"
	}
	return Rule{Priority: LeasePriority(p.Host, i), SuppressDefault: true, Family: family(ifc.DHCP4, ifc.AcceptRA), Table: pi.Table, Origin: report.Path{"interfaces", i, key}}
}

// family is a rule's family for the address families it serves: 4, 6, or 0 for both.
func family(v4, v6 bool) int {
	switch {
	case v4 && !v6:
		return 4
	case v6 && !v4:
		return 6
	}
	return 0
}

// markRules routes the packets of connections tracked on ifc: in the families it has a gateway for, from the
// description or from a lease or an advertisement.
func markRules(p *Plan, ifc *Interface, i int) {
	family := family(ifc.Gateway.IsValid() || ifc.DHCP4, ifc.Gateway6.IsValid() || ifc.AcceptRA)
	origin := report.Path{"interfaces", i, "track_connections"}
	base := p.Host.Priorities.Min
	ifc.MarkRules = []Rule{
		// The request, flagged, as it arrives on the interface: by main, to the pod or address it is for.
		{Priority: base + markMainOffset, Mark: ifc.Mark | p.RequestBit(), Mask: p.MarkMask, Iif: ifc.Name, Family: family, Table: MainTable, Origin: origin},
		// Everything else of the connection, flagged or not: its replies, and rp_filter's check of its request.
		{Priority: base + markTableOffset, Mark: ifc.Mark, Mask: p.ValueMask(), Family: family, Table: ifc.Table, Origin: origin},
	}
}

// tableRoutes are the routes of an interface's table: each distinct subnet on-link, then the default route via
// the gateway, IPv4 before IPv6.
func tableRoutes(ifc description.Interface, table uint32) []Route {
	var routes []Route
	for _, v6 := range []bool{false, true} {
		seen := map[netip.Prefix]bool{}
		for _, a := range ifc.Addresses {
			subnet := a.Masked()
			// A /32 or /128 has no subnet to reach on-link; its traffic goes through the gateway.
			if a.Addr().Is6() != v6 || a.IsSingleIP() || seen[subnet] {
				continue
			}
			seen[subnet] = true
			routes = append(routes, Route{Destination: subnet, Table: table})
		}
		gw := ifc.Gateway
		if v6 {
			gw = ifc.Gateway6
		}
		if gw.IsValid() {
			routes = append(routes, Route{Gateway: gw, Table: table})
		}
	}
	return routes
}

// sysctls sets rp_filter per interface by name, never by wildcard: a wildcard also hits links that CNIs create
// later, and a CNI that needs loose or no filtering on its links (Cilium does) breaks.
func sysctls(h *description.Host) []Sysctl {
	var out []Sysctl
	if h.RPFilterAll != nil {
		out = append(out, Sysctl{Key: "net.ipv4.conf.all.rp_filter", Value: fmt.Sprint(int(*h.RPFilterAll)), Why: "rp_filter_all: " + h.RPFilterAll.String()})
	}
	for _, ifc := range h.Interfaces {
		out = append(out, Sysctl{Key: ifname.SysctlKey(ifc.Name, "rp_filter"), Value: fmt.Sprint(int(ifc.RPFilter)), Why: ifc.Name + ": " + ifc.RPFilter.String()})
	}
	// rp_filter ignores marks unless src_valid_mark is on: a tracked request, checked against the interface's
	// table through its mark, would otherwise be checked against main and dropped under strict filtering.
	for _, ifc := range h.Interfaces {
		if ifc.TrackConnections {
			out = append(out, Sysctl{Key: ifname.SysctlKey(ifc.Name, "src_valid_mark"), Value: "1", Why: ifc.Name + ": track_connections"})
		}
	}
	return out
}

// FollowSlots are where the follower keeps the dynamic interfaces' "from <address>" rules: at each one's
// priority, to its table, beside the rules of its static addresses.
func (p *Plan) FollowSlots() []record.FollowSlot {
	var out []record.FollowSlot
	for _, ifc := range p.Interfaces {
		if ifc.Dynamic() {
			out = append(out, record.FollowSlot{Interface: ifc.Name, Table: ifc.Table, Priority: ifc.Priority})
		}
	}
	return out
}

// KernelRule is one rule as networkd puts it into the kernel, with where the plan got it.
type KernelRule struct {
	record.Rule
	Origin report.Path
	// Interface names the interface the rule belongs to; "" for the cluster rules.
	Interface string
}

// KernelRules lists every rule the plan makes, as the kernel holds them: a mark rule for both families is two.
func (p *Plan) KernelRules() []KernelRule {
	var out []KernelRule
	add := func(r Rule, ifc string) {
		kr := record.Rule{Priority: r.Priority, From: r.From, To: r.To, Mark: r.Mark, Iif: r.Iif, Table: r.Table, SuppressDefault: r.SuppressDefault}
		if r.Mask == 0 && !r.SuppressDefault {
			out = append(out, KernelRule{kr, r.Origin, ifc})
			return
		}
		kr.Mask = r.Mask
		for _, f := range []int{4, 6} {
			if r.Family == 0 || r.Family == f {
				kr.Family = f
				out = append(out, KernelRule{kr, r.Origin, ifc})
			}
		}
	}
	for _, r := range p.ClusterRules {
		add(r, "")
	}
	for _, ifc := range p.Interfaces {
		for _, r := range ifc.MarkRules {
			add(r, ifc.Name)
		}
		for _, r := range ifc.Rules {
			add(r, ifc.Name)
		}
		for _, r := range ifc.LeaseRules {
			add(r, ifc.Name)
		}
	}
	return out
}
