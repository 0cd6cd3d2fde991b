// Package drift compares the plan with a snapshot of the live state and names every difference: a rule missing,
// a table emptied, a foreign rule at one of symroute's priorities, a probe answered by the wrong table, an
// rp_filter that is not in effect, a link configured by another file. It is pure: the snapshot is gathered
// elsewhere (internal/state).
package drift

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/core/reservations"
	"github.com/symroute/symroute/internal/core/routing"
)

// Snapshot is the live state verify compares with the plan.
type Snapshot struct {
	Rules []routing.Rule
	// Routes holds the routes of each table the plan gives an interface (main is not read: it can be a BGP-fed
	// node's largest table, and the probes ask the kernel's own answer instead).
	Routes map[uint32][]routing.Route
	// Links maps link names to indexes.
	Links map[string]int
	// RPFilter holds net.ipv4.conf.all.rp_filter under "all" and each interface's value under its name;
	// SrcValidMark likewise src_valid_mark, for the interfaces that track connections.
	RPFilter     map[string]int
	SrcValidMark map[string]int
	// Connmark is the nftables table of track_connections as the kernel holds it; nil when it was not read.
	Connmark *Connmark
	// NetworkFiles maps a link name to the .network file networkd applied to it, and LinkStates to its
	// administrative state; both nil when networkd did not answer, so the checks are skipped rather than failed.
	NetworkFiles map[string]string
	LinkStates   map[string]string
	Probes       []ProbeResult
	// Followed holds the global addresses each dynamic interface has now, by name, and LeaseGateways whether
	// its table has an IPv4 ([0]) and an IPv6 ([1]) default route through it, from a lease or advertisements.
	Followed      map[string][]netip.Addr
	LeaseGateways map[string][2]bool
	// Notes say what could not be read, such as networkd not answering.
	Notes []string
}

// Connmark is what the kernel holds of table inet symroute: whether it exists, the hash of what it holds, and
// the running kernel's release.
type Connmark struct {
	Present bool
	Hash    string
	Kernel  string
}

// Kind classifies a finding; the names are stable, for -o json and metrics.
type Kind string

const (
	RuleMissing     Kind = "rule_missing"
	RuleForeign     Kind = "rule_foreign"
	RouteMissing    Kind = "route_missing"
	RouteUnexpected Kind = "route_unexpected"
	TableEmpty      Kind = "table_empty"
	ProbeWrong      Kind = "probe_wrong_path"
	RPFilterWrong   Kind = "rp_filter"
	// SrcValidMarkOff: rp_filter ignores a tracked connection's mark on the interface.
	SrcValidMarkOff Kind = "src_valid_mark"
	// ConnmarkMissing, ConnmarkAltered, ConnmarkStale: the nftables table of track_connections is gone, is not
	// what symroute loaded, or is still there though no interface tracks connections.
	ConnmarkMissing Kind = "connmark_missing"
	ConnmarkAltered Kind = "connmark_altered"
	ConnmarkStale   Kind = "connmark_stale"
	NetworkFile     Kind = "network_file"
	LinkMissing     Kind = "link_missing"
	// RuleStale is a rule the record says symroute made that the plan no longer has; apply deletes it.
	RuleStale Kind = "rule_stale"
	// LinkNotConfigured is a link networkd has not (or not yet) configured.
	LinkNotConfigured Kind = "link_not_configured"
)

// Kinds lists every kind, for metrics.
var Kinds = []Kind{RuleMissing, RuleForeign, RuleStale, RouteMissing, RouteUnexpected, TableEmpty, ProbeWrong, RPFilterWrong, NetworkFile, LinkMissing, LinkNotConfigured}

// Expect is what the comparison needs beside the plan.
type Expect struct {
	// NetworkFiles maps each link symroute configures (the interfaces, and lo for the cluster rules) to the
	// .network file networkd should apply to it.
	NetworkFiles map[string]string
	// Recorded is what the record says symroute has in place: a rule it lists is symroute's, any other is
	// someone else's. Nil when there is no record.
	Recorded *record.State
}

// Finding is one difference between the plan and the live state.
type Finding struct {
	Kind      Kind   `json:"kind" yaml:"kind"`
	Interface string `json:"interface,omitempty" yaml:"interface,omitempty"`
	Message   string `json:"message" yaml:"message"`
	// Path, Line and Column say where the description asks for what drifted.
	Path   string `json:"path,omitempty" yaml:"path,omitempty"`
	Line   int    `json:"line,omitempty" yaml:"line,omitempty"`
	Column int    `json:"column,omitempty" yaml:"column,omitempty"`
	// Expected and Actual say, as short text, what the plan wants and what the live state holds instead, where
	// drift knows both: a rule and "absent", two rp_filter values, the interface and table a reply should leave
	// by and those it would. Empty when not meaningful.
	Expected string `json:"expected,omitempty" yaml:"expected,omitempty"`
	Actual   string `json:"actual,omitempty" yaml:"actual,omitempty"`
}

// Absent is a finding's Expected or Actual for something that is not there.
const Absent = "absent"

// Result is what verify found and how much it checked.
type Result struct {
	Findings []Finding `json:"findings"`
	Checked  struct {
		Rules    int  `json:"rules"`
		Routes   int  `json:"routes"`
		Probes   int  `json:"probes"`
		Links    int  `json:"links"`
		Sysctls  int  `json:"sysctls"`
		Networkd bool `json:"networkd"`
		// Connmark says the nftables table of track_connections was looked at.
		Connmark bool `json:"connmark,omitempty"`
	} `json:"checked"`
	// Notes say what could not be checked and why.
	Notes []string `json:"notes,omitempty"`
	// Interfaces are the interfaces checked, by name.
	Interfaces []string `json:"interfaces"`
}

// OK reports whether nothing drifted.
func (r Result) OK() bool { return len(r.Findings) == 0 }

// Compare checks snap against p. Findings is never nil, so -o json prints [] when nothing drifted.
func Compare(p *plan.Plan, snap Snapshot, expect Expect) Result {
	c := &comparer{p: p, snap: snap, recorded: expect.Recorded}
	c.res.Findings = []Finding{}
	c.rules()
	c.routes()
	c.probes()
	c.rpFilter()
	c.srcValidMark()
	c.connmark()
	c.networkFiles(expect.NetworkFiles)
	c.res.Notes = append(c.res.Notes, snap.Notes...)
	for _, ifc := range p.Interfaces {
		c.res.Interfaces = append(c.res.Interfaces, ifc.Name)
	}
	return c.res
}

type comparer struct {
	p        *plan.Plan
	snap     Snapshot
	recorded *record.State
	res      Result
}

// add records a finding; the caller names what was expected and what is there with was.
func (c *comparer) add(kind Kind, ifname string, origin report.Path, format string, args ...any) *Finding {
	f := Finding{Kind: kind, Interface: ifname, Message: fmt.Sprintf(format, args...)}
	if origin != nil {
		pos := c.p.Host.Pos(origin)
		f.Path, f.Line, f.Column = origin.String(), pos.Line, pos.Column
	}
	c.res.Findings = append(c.res.Findings, f)
	return &c.res.Findings[len(c.res.Findings)-1]
}

// was sets what the finding expected and what it found.
func (f *Finding) was(expected, actual string) { f.Expected, f.Actual = expected, actual }

// RuleString renders a rule as `ip rule` would.
func RuleString(prio uint32, from, to netip.Prefix, table uint32) string {
	return record.Rule{Priority: prio, From: from, To: to, Table: table}.String()
}

type ruleKey = record.Rule

func (c *comparer) rules() {
	ours := map[uint32]string{}
	want := map[ruleKey]plan.KernelRule{}
	for _, r := range c.p.ClusterRules {
		ours[r.Priority] = "the cluster_cidrs rules"
	}
	for _, ifc := range c.p.Interfaces {
		ours[ifc.Priority] = ifc.Name + "'s rules"
		for _, r := range ifc.MarkRules {
			ours[r.Priority] = "the track_connections rules"
		}
	}
	planned := c.p.KernelRules()
	for _, r := range planned {
		want[r.Rule] = r
	}
	got := map[ruleKey]bool{}
	slots := c.p.FollowSlots()
	followed := map[record.FollowSlot]map[netip.Addr]bool{}
	for _, kr := range c.snap.Rules {
		if i := slices.IndexFunc(slots, func(s record.FollowSlot) bool { return ownership.FollowerRule(s, kr) }); i >= 0 {
			s := slots[i]
			if !slices.Contains(c.snap.Followed[s.Interface], kr.From.Addr()) {
				c.add(RuleStale, s.Interface, nil, "rule %d: from %s lookup %s is the follower's, for an address %s no longer has; %s deletes it: is it running?",
					s.Priority, kr.From.Addr(), routing.TableName(s.Table), s.Interface, ownership.FollowUnit).was(Absent, RuleString(s.Priority, kr.From, netip.Prefix{}, s.Table))
				continue
			}
			if followed[s] == nil {
				followed[s] = map[netip.Addr]bool{}
			}
			followed[s][kr.From.Addr()] = true
			continue
		}
		k := ownership.RuleOf(kr)
		_, atOurs := ours[kr.Priority]
		inRange := c.p.Host.Priorities.Contains(kr.Priority)
		if !atOurs && !inRange {
			continue
		}
		if _, planned := want[k]; planned {
			got[k] = true
			continue
		}
		rule := k.String()
		switch {
		case ownership.OwnsRule(c.recorded, kr):
			c.add(RuleStale, "", nil, "rule %s is symroute's but no longer in the plan; the next apply deletes it", rule).was(Absent, rule)
		case atOurs && sharesOurs(planned, kr):
			c.add(RuleForeign, "", nil, "rule %s takes priority %d, which symroute uses for %s, and comes before or after them at random; it is not symroute's, so move it to a free priority (a gap of priority_range, or outside it)",
				rule, kr.Priority, ours[kr.Priority]).was("", rule)
		case atOurs:
			c.res.Notes = append(c.res.Notes, fmt.Sprintf("rule %s shares priority %d with %s but selects traffic none of them does; it is not symroute's, and symroute leaves it alone", rule, kr.Priority, ours[kr.Priority]))
		default:
			c.res.Notes = append(c.res.Notes, fmt.Sprintf("rule %s sits in priority_range %s between symroute's rules; it is not symroute's, and symroute leaves it alone", rule, c.p.Host.Priorities))
		}
	}
	for _, s := range slots {
		ifc := c.p.Interfaces[slices.IndexFunc(c.p.Interfaces, func(i plan.Interface) bool { return i.Name == s.Interface })]
		for _, a := range c.snap.Followed[s.Interface] {
			c.res.Checked.Rules++
			if !followed[s][a] {
				c.add(RuleMissing, s.Interface, dynamicOrigin(ifc, a.Is6()), "rule %d: from %s lookup %s, for %s's address %s, is missing; %s keeps it: is it running? (apply puts it back)",
					s.Priority, a, routing.TableName(s.Table), s.Interface, a, ownership.FollowUnit).was(RuleString(s.Priority, netip.PrefixFrom(a, a.BitLen()), netip.Prefix{}, s.Table), Absent)
			}
		}
	}
	keys := make([]ruleKey, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return ruleLess(keys[i], keys[j]) })
	for _, k := range keys {
		c.res.Checked.Rules++
		if !got[k] {
			r := want[k]
			c.add(RuleMissing, r.Interface, r.Origin, "rule %s is missing", k.String()).was(k.String(), Absent)
		}
	}
}

// sharesOurs reports whether a foreign rule at one of symroute's priorities can take traffic one of symroute's
// rules there takes: the kernel orders rules of one priority by when they were added, so such a rule wins or
// loses at random. Rules that select disjoint marks, or different input interfaces, never compete.
func sharesOurs(planned []plan.KernelRule, kr routing.Rule) bool {
	for _, r := range planned {
		if r.Priority != kr.Priority {
			continue
		}
		if r.Mark != 0 && kr.Mark != 0 && (r.Mark&kr.Mask&r.Mask) != (kr.Mark&kr.Mask&r.Mask) {
			continue // both select by mark, and no packet carries both marks
		}
		if r.Iif != "" && kr.Iif != "" && r.Iif != kr.Iif {
			continue
		}
		return true
	}
	return false
}

func ruleLess(a, b ruleKey) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	return a.String() < b.String()
}

// RouteString renders a route as `ip route` would.
func RouteString(dst netip.Prefix, gw netip.Addr, table uint32) string {
	s := "default"
	if dst.IsValid() {
		s = dst.String()
	}
	if gw.IsValid() {
		s += " via " + gw.String()
	}
	return fmt.Sprintf("%s table %s", s, routing.TableName(table))
}

type routeKey struct {
	dst netip.Prefix
	gw  netip.Addr
}

func (c *comparer) routes() {
	for _, ifc := range c.p.Interfaces {
		index, linked := c.snap.Links[ifc.Name]
		c.res.Checked.Links++
		if !linked {
			c.add(LinkMissing, ifc.Name, report.Path{"interfaces", ifc.Position, "name"}, "link %s does not exist", ifc.Name).was("link "+ifc.Name, Absent)
			continue
		}
		live := c.snap.Routes[ifc.Table]
		if len(live) == 0 && len(ifc.TableRoutes) > 0 {
			c.add(TableEmpty, ifc.Name, report.Path{"interfaces", ifc.Position}, "table %d (%s) is empty%s", ifc.Table, ifc.TableName, claimedBy(c.p.Host, ifc.Table)).
				was(fmt.Sprintf("%d routes", len(ifc.TableRoutes)), "no routes")
			c.res.Checked.Routes += len(ifc.TableRoutes)
			continue
		}
		got := map[routeKey]routing.Route{}
		for _, r := range live {
			got[routeKey{r.Destination, r.Gateway}] = r
		}
		want := map[routeKey]bool{}
		for _, r := range ifc.TableRoutes {
			c.res.Checked.Routes++
			k := routeKey{r.Destination, r.Gateway}
			want[k] = true
			lr, ok := got[k]
			switch {
			case !ok:
				c.add(RouteMissing, ifc.Name, report.Path{"interfaces", ifc.Position}, "route %s is missing", RouteString(r.Destination, r.Gateway, r.Table)).was(RouteString(r.Destination, r.Gateway, r.Table), Absent)
			case lr.LinkIndex != index:
				c.add(RouteMissing, ifc.Name, report.Path{"interfaces", ifc.Position}, "route %s leaves by link %d, not %s", RouteString(r.Destination, r.Gateway, r.Table), lr.LinkIndex, ifc.Name).
					was("dev "+ifc.Name, "dev "+c.linkName(lr.LinkIndex))
			}
		}
		if ifc.Dynamic() {
			c.leaseRoutes(ifc, index, live)
		}
		for _, r := range live {
			// A lease's or an advertisement's routes are networkd's to put in the table, whatever they are.
			if ifc.Dynamic() && r.LinkIndex == index {
				continue
			}
			if !want[routeKey{r.Destination, r.Gateway}] {
				c.add(RouteUnexpected, ifc.Name, nil, "route %s is in symroute's table but not in the plan", RouteString(r.Destination, r.Gateway, ifc.Table)).was(Absent, RouteString(r.Destination, r.Gateway, ifc.Table))
			}
		}
	}
}

// leaseRoutes checks that a dynamic interface's table has a default route in each family whose address the
// interface has from its lease or advertisements: without it, replies to clients beyond the subnet have no way out.
func (c *comparer) leaseRoutes(ifc plan.Interface, index int, live []routing.Route) {
	for _, v6 := range []bool{false, true} {
		if !servesFamily(ifc, v6) || !slices.ContainsFunc(c.snap.Followed[ifc.Name], func(a netip.Addr) bool { return a.Is6() == v6 }) {
			continue
		}
		if !slices.ContainsFunc(live, func(r routing.Route) bool {
			return !r.Destination.IsValid() && (r.Gateway.Is6() == v6) && r.LinkIndex == index
		}) {
			// Not drift: the lease or the advertisements named no router, and symroute makes none up.
			from := "lease"
			if v6 {
				from = "router advertisements"
			}
			c.res.Notes = append(c.res.Notes, fmt.Sprintf("table %d (%s) has no %s default route through %s: its %s named no router, so replies to clients beyond its subnet leave by main",
				ifc.Table, ifc.TableName, map[bool]string{false: "IPv4", true: "IPv6"}[v6], ifc.Name, from))
		}
	}
}

// claimedBy names the components whose claims include table, declared ones first: the likeliest culprits for an
// emptied table.
func claimedBy(h *description.Host, table uint32) string {
	var names []string
	declared := map[string]bool{}
	for _, c := range h.Components {
		declared[c.Name] = true
	}
	for _, c := range reservations.Components {
		for _, cl := range c.Tables {
			if cl.Contains(table) {
				label := c.Name
				if declared[c.Name] {
					label += " (declared)"
				}
				names = append(names, label)
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	return "; it lies in the claim of " + strings.Join(names, ", ")
}

func (c *comparer) probes() {
	for _, pr := range c.snap.Probes {
		c.res.Checked.Probes++
		ifc := c.p.Interfaces[pr.Position]
		what := fmt.Sprintf("a reply from %s to %s (%s)", pr.Src, pr.Dst, pr.Why)
		want := fmt.Sprintf("dev %s table %s", ifc.Name, routing.TableName(ifc.Table))
		if pr.Mark != 0 {
			what = fmt.Sprintf("a reply to %s (%s) on a connection tracked on %s (mark %#x)", pr.Dst, pr.Why, ifc.Name, pr.Mark)
		}
		switch {
		case pr.Err != "":
			c.add(ProbeWrong, ifc.Name, pr.Origin, "%s: the kernel gave no route: %s", what, pr.Err).was(want, "no route")
		case pr.Answer.Table != ifc.Table || pr.Answer.LinkIndex != c.snap.Links[ifc.Name]:
			c.add(ProbeWrong, ifc.Name, pr.Origin, "%s would leave by %s through table %s, not by %s through %s (%d)",
				what, c.linkName(pr.Answer.LinkIndex), routing.TableName(pr.Answer.Table), ifc.Name, ifc.TableName, ifc.Table).
				was(want, fmt.Sprintf("dev %s table %s", c.linkName(pr.Answer.LinkIndex), routing.TableName(pr.Answer.Table)))
		}
	}
}

func (c *comparer) linkName(index int) string {
	if name, ok := c.snap.LinkName(index); ok {
		return name
	}
	return fmt.Sprintf("link %d", index)
}

// LinkName names the link with index, when the snapshot knows it.
func (s Snapshot) LinkName(index int) (string, bool) {
	for name, i := range s.Links {
		if i == index {
			return name, true
		}
	}
	return "", false
}

func (c *comparer) rpFilter() {
	if c.snap.RPFilter == nil {
		return
	}
	all, allKnown := c.snap.RPFilter["all"]
	for _, ifc := range c.p.Interfaces {
		v, ok := c.snap.RPFilter[ifc.Name]
		if !ok || !allKnown {
			continue // the link is missing, reported above
		}
		c.res.Checked.Sysctls++
		effective := int(description.EffectiveRPFilter(all, v))
		want := int(ifc.RPFilter)
		if c.p.Host.RPFilterAll != nil {
			want = max(want, int(*c.p.Host.RPFilterAll))
		}
		if effective != want {
			c.add(RPFilterWrong, ifc.Name, report.Path{"interfaces", ifc.Position, "rp_filter"}, "effective rp_filter of %s is %s (the larger of all=%d and %s=%d), want %s",
				ifc.Name, description.RPFilter(effective), all, ifc.Name, v, description.RPFilter(want)).
				was(description.RPFilter(want).String(), description.RPFilter(effective).String())
		}
	}
}

// srcValidMark checks that rp_filter sees the marks of tracked connections: the kernel takes all OR interface.
func (c *comparer) srcValidMark() {
	for _, ifc := range c.p.Tracked() {
		v, ok := c.snap.SrcValidMark[ifc.Name]
		if !ok {
			continue // the link is missing, reported above, or nothing was read
		}
		c.res.Checked.Sysctls++
		if v == 0 && c.snap.SrcValidMark["all"] == 0 {
			c.add(SrcValidMarkOff, ifc.Name, report.Path{"interfaces", ifc.Position, "track_connections"},
				"src_valid_mark is off on %s (all=0, %s=0): rp_filter ignores tracked connections' marks there, so under strict filtering it drops their requests", ifc.Name, ifc.Name).was("1", "0")
		}
	}
}

// connmark checks the nftables table of track_connections against what the record says symroute loaded. Without
// a record (a host set up by Ignition or generate) the table's presence is all that can be checked; after a
// kernel upgrade the same table may read differently, so it is not compared then.
func (c *comparer) connmark() {
	live := c.snap.Connmark
	if live == nil {
		return
	}
	tracked := c.p.Tracked()
	recorded := ""
	if c.recorded != nil {
		recorded = c.recorded.Connmark
	}
	if len(tracked) == 0 {
		if live.Present && recorded != "" {
			c.add(ConnmarkStale, "", nil, "nftables table inet symroute is still loaded, though no interface tracks connections; the next apply deletes it").was(Absent, "present")
		}
		return
	}
	at := report.Path{"interfaces", tracked[0].Position, "track_connections"}
	c.res.Checked.Connmark = true
	switch {
	case !live.Present:
		c.add(ConnmarkMissing, "", at, "nftables table inet symroute is missing, so no connection is marked and replies to tracked connections leave by the routes of their addresses; apply loads it again (its unit, %s, loads it at boot)", "symroute-connmark.service").was("present", Absent)
	case recorded == "":
		c.res.Notes = append(c.res.Notes, "nftables table inet symroute is loaded; its content was not compared, since no apply has recorded it")
	case c.recorded.ConnmarkKernel != live.Kernel:
		c.res.Notes = append(c.res.Notes, fmt.Sprintf("nftables table inet symroute was recorded under kernel %s and this is %s, which may describe it differently; its content was not compared (the next apply records it again)", c.recorded.ConnmarkKernel, live.Kernel))
	case live.Hash != recorded:
		c.add(ConnmarkAltered, "", at, "nftables table inet symroute is not what symroute loaded: a rule or chain was changed, added or deleted; apply loads it again from /etc/symroute/90-symroute.nft").was(recorded, live.Hash)
	}
}

func (c *comparer) networkFiles(expected map[string]string) {
	if c.snap.NetworkFiles == nil {
		return
	}
	c.res.Checked.Networkd = true
	origin := func(name string) report.Path {
		for _, ifc := range c.p.Interfaces {
			if ifc.Name == name {
				return report.Path{"interfaces", ifc.Position, "mode"}
			}
		}
		return report.Path{"cluster_cidrs"} // lo, which carries the cluster rules
	}
	for _, name := range sortedNames(expected) {
		want := expected[name]
		got, linked := c.snap.NetworkFiles[name]
		if !linked {
			continue
		}
		switch state := c.snap.LinkStates[name]; {
		case got == "":
			c.add(NetworkFile, name, origin(name), "networkd does not manage %s; expected it to apply %s", name, want).was(want, "unmanaged")
		case got != want:
			c.add(NetworkFile, name, origin(name), "networkd configured %s with %s, not %s", name, got, want).was(want, got)
		case state != "" && state != "configured":
			c.add(LinkNotConfigured, name, origin(name), "networkd has not configured %s: it is %s", name, state).was("configured", state)
		}
	}
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
