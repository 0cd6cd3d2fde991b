// Package routing is the kernel's routing state as plain data: rules, routes, route lookups, addresses and
// links, as the netlink edge reads them and the core compares them. It does no I/O.
package routing

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Rule is a routing-policy rule as the kernel holds it.
type Rule struct {
	Family   int
	Priority uint32
	From, To netip.Prefix
	Table    uint32
	Protocol uint8
	// Action is the rule's type: FR_ACT_TO_TBL (1, a lookup) for every rule symroute makes.
	Action uint8
	// Mark and Mask are its fwmark match, and Iif its input interface, when it has them.
	Mark, Mask uint32
	Iif        string
	// SuppressDefault is suppress_prefixlength 0: a lookup whose answer is a default route is ignored, so only the
	// table's more specific routes apply.
	SuppressDefault bool
	// Narrowed says the rule selects on more than addresses, a mark and an input interface (an output interface,
	// a uid range, a protocol or port, a TOS, or "not"): symroute makes no such rule.
	Narrowed bool
	// Invert is "not": the rule takes what its selectors do not match. Oif is its output interface, and Extra its
	// other selectors as ip rule writes them ("ipproto 6", "dport 80"), for showing it whole.
	Invert bool
	Oif    string
	Extra  string
	// Target is what a rule that does not look a table up does, as ip rule writes it ("blackhole", "goto 110").
	Target string
}

// Selector is the rule's selector as ip rule writes it: "from 10.0.0.1", "not from all iif eth-b fwmark 0x800/0x1c00".
func (r Rule) Selector() string {
	sel := "from all"
	if r.From.IsValid() {
		sel = "from " + hostOrPrefix(r.From)
	}
	if r.Invert {
		sel = "not " + sel
	}
	if r.To.IsValid() {
		sel += " to " + hostOrPrefix(r.To)
	}
	if r.Mark != 0 || r.Mask != 0 {
		sel += fmt.Sprintf(" fwmark %#x/%#x", r.Mark, r.Mask)
	}
	if r.Iif != "" {
		sel += " iif " + r.Iif
	}
	if r.Oif != "" {
		sel += " oif " + r.Oif
	}
	if r.Extra != "" {
		sel += " " + r.Extra
	}
	return sel
}

// Does is what the rule does, as ip rule writes it: "lookup main", "lookup 1000001 suppress_prefixlength 0",
// "blackhole".
func (r Rule) Does() string {
	if r.Action != ActionLookup {
		if r.Target != "" {
			return r.Target
		}
		return "no lookup"
	}
	s := "lookup " + TableName(r.Table)
	if r.SuppressDefault {
		s += " suppress_prefixlength 0"
	}
	return s
}

func hostOrPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// The address families of rules and routes, as netlink numbers them (AF_INET, AF_INET6).
const (
	FamilyV4 = 2
	FamilyV6 = 10
)

// ActionLookup is FR_ACT_TO_TBL: look the packet up in Table.
const ActionLookup = 1

// Route is a route as the kernel holds it; Destination is invalid for a default route.
type Route struct {
	Family      int
	Destination netip.Prefix
	Gateway     netip.Addr
	Table       uint32
	LinkIndex   int
	Metric      int
	// Blocked says the route sends nothing anywhere (blackhole, unreachable, prohibit, throw); NextHopLinks are
	// the links of a multipath route's nexthops (LinkIndex is then 0).
	Blocked      bool
	NextHopLinks []int
}

// Links are the links a route can send a packet by.
func (r Route) Links() []int {
	if len(r.NextHopLinks) > 0 {
		return r.NextHopLinks
	}
	if r.LinkIndex == 0 {
		return nil
	}
	return []int{r.LinkIndex}
}

// Answer is the kernel's answer to "how would a packet from src to dst leave?".
type Answer struct {
	LinkIndex int
	Table     uint32
	Gateway   netip.Addr
}

// Query is a route lookup as the kernel makes one: for a packet from Src (invalid: the kernel chooses) to Dst
// carrying Mark, arriving on Iif ("" for one the host sends itself).
type Query struct {
	Src, Dst netip.Addr
	Iif      string
	Mark     uint32
}

// Address is an address on a link, with its IPv4 broadcast (invalid when the address has none).
type Address struct {
	Prefix    netip.Prefix
	Broadcast netip.Addr
	// Scope is the address's scope (0, universe, for a global address); DADFailed says IPv6 duplicate address
	// detection found it in use elsewhere, so the host does not use it.
	Scope     uint8
	DADFailed bool
	// Dynamic says the address expires (the kernel does not mark it permanent: a DHCP lease's, a router
	// advertisement's), ValidSeconds how long it stays valid from when it was read.
	Dynamic      bool
	ValidSeconds uint32
}

// Link is a link as discover sees it.
type Link struct {
	Index    int
	Name     string
	Kind     string // veth, bridge, vxlan...; empty for a physical device
	Up       bool
	Loopback bool
	// OperState is the kernel's operational state (RFC 2863's, as ip link shows it): up, down,
	// lower-layer-down, dormant, unknown...
	OperState string
	MAC       string
	Addresses []netip.Prefix
}

// Inventory is what discover reads: links with their global addresses, every default route in any table, and
// the rules.
type Inventory struct {
	Links         []Link
	DefaultRoutes []Route
	Rules         []Rule
}

// TableName renders a table id as ip(8) does: the kernel's reserved tables by name (default 253, main 254, local
// 255), every other by number.
func TableName(table uint32) string {
	switch table {
	case 253:
		return "default"
	case 254:
		return "main"
	case 255:
		return "local"
	}
	return strconv.FormatUint(uint64(table), 10)
}
