// Package kernel talks to the kernel's routing over netlink: it reads rules, routes and links, asks route lookups,
// and makes the one write symroute makes itself, deleting a rule of its own that networkd left behind.
package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/symroute/symroute/internal/core/networkfiles"
	"github.com/symroute/symroute/internal/core/routing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// actionOther stands for every action but a lookup: goto, nop, blackhole, unreachable, prohibit.
const actionOther = 0xff

// actionOf tells a lookup from the other actions. The netlink library does not report the rule header's action;
// the kernel gives a table to lookups only, and a goto has its target.
func actionOf(nr netlink.Rule) uint8 {
	if nr.Table != 0 && nr.Goto < 0 {
		return routing.ActionLookup
	}
	return actionOther
}

// extraSelectors are a rule's selectors beyond addresses, marks and interfaces, as ip rule writes them.
func extraSelectors(nr netlink.Rule) string {
	var out []string
	if nr.Tos != 0 {
		out = append(out, fmt.Sprintf("tos %#x", nr.Tos))
	}
	if nr.IPProto != 0 {
		out = append(out, fmt.Sprintf("ipproto %d", nr.IPProto))
	}
	if nr.Sport != nil {
		out = append(out, "sport "+portRange(nr.Sport))
	}
	if nr.Dport != nil {
		out = append(out, "dport "+portRange(nr.Dport))
	}
	if nr.UIDRange != nil {
		out = append(out, fmt.Sprintf("uidrange %d-%d", nr.UIDRange.Start, nr.UIDRange.End))
	}
	if nr.SuppressPrefixlen > 0 {
		out = append(out, fmt.Sprintf("suppress_prefixlength %d", nr.SuppressPrefixlen))
	}
	if nr.SuppressIfgroup >= 0 {
		out = append(out, fmt.Sprintf("suppress_ifgroup %d", nr.SuppressIfgroup))
	}
	return strings.Join(out, " ")
}

func portRange(p *netlink.RulePortRange) string {
	if p.Start == p.End {
		return fmt.Sprint(p.Start)
	}
	return fmt.Sprintf("%d-%d", p.Start, p.End)
}

// targetOf is what a rule that looks no table up does, as far as the netlink library tells: it reads a goto's
// target, but not which of blackhole, unreachable, prohibit or nop a rule without a table is.
func targetOf(nr netlink.Rule) string {
	switch {
	case nr.Goto >= 0:
		return fmt.Sprintf("goto %d", nr.Goto)
	case nr.Table == 0:
		return "no lookup (blackhole, unreachable, prohibit or nop)"
	}
	return ""
}

// Reader reads from one network namespace's netlink handle.
type Reader struct {
	h *netlink.Handle
	// noStrictCheck records that the kernel refused NETLINK_GET_STRICT_CHK.
	noStrictCheck bool
	// own says the handle is on the process's own namespace: /sys/class/net and ethtool then describe the same
	// links.
	own bool
}

// StrictCheck reports whether route dumps are filtered by the kernel, as opposed to in user space.
func (r *Reader) StrictCheck() bool { return !r.noStrictCheck }

// NewReader reads through h; a nil h opens a handle on the caller's own namespace. The handle must own its
// sockets (netlink.NewHandle, NewHandleAt): Routes turns on strict checking on them.
func NewReader(h *netlink.Handle) (*Reader, error) {
	own := h == nil
	if own {
		var err error
		if h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return nil, fmt.Errorf("open a netlink socket: %w", err)
		}
	}
	return &Reader{h: h, own: own}, nil
}

// Close closes the handle NewReader opened; a handle given to NewReader stays its owner's to close. A process
// that lives long (the node agent) reads through a Reader per verify: each must give its sockets back.
func (r *Reader) Close() {
	if r.own {
		r.h.Close()
	}
}

// dumpAttempts bounds retries of a dump the kernel interrupted because the table changed under it; since
// vishvananda/netlink 1.2.1 such a dump returns partial data with ErrDumpInterrupted.
const dumpAttempts = 5

func retry[T any](list func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range dumpAttempts {
		out, err = list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, fmt.Errorf("netlink dump interrupted %d times in a row: %w", dumpAttempts, err)
}

// Rules returns every IPv4 and IPv6 rule.
func (r *Reader) Rules() ([]routing.Rule, error) {
	var out []routing.Rule
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := retry(func() ([]netlink.Rule, error) { return r.h.RuleList(fam) })
		if err != nil {
			return nil, fmt.Errorf("list rules: %w", err)
		}
		for _, nr := range rules {
			r := routing.Rule{
				Family:   fam,
				Priority: uint32(nr.Priority),
				From:     prefix(nr.Src),
				To:       prefix(nr.Dst),
				Table:    uint32(nr.Table),
				Protocol: nr.Protocol,
				Action:   actionOf(nr),
				Mark:     nr.Mark,
			}
			if nr.Mask != nil {
				r.Mask = *nr.Mask
			}
			r.Iif = nr.IifName
			r.Oif, r.Invert, r.Extra, r.Target = nr.OifName, nr.Invert, extraSelectors(nr), targetOf(nr)
			r.SuppressDefault = nr.SuppressPrefixlen == 0
			r.Narrowed = nr.OifName != "" || nr.UIDRange != nil || nr.IPProto != 0 || nr.Dport != nil || nr.Sport != nil || nr.Tos != 0 || nr.Invert ||
				nr.SuppressPrefixlen > 0 || nr.SuppressIfgroup >= 0
			out = append(out, r)
		}
	}
	return out, nil
}

// Routes returns the IPv4 and IPv6 routes of table. With strict checking on for the dump, the kernel filters by
// table (as iproute2 has it), so the cost follows the table's size rather than main's: verify must not slow down
// on a BGP-fed node's large main table. Strict checking is off otherwise, because the kernel rejects the rule
// dump request netlink sends under it.
//
// A kernel without strict checking (before 4.20) refuses to turn it on; the dump then covers every table and the
// netlink library keeps the table's routes in user space: correct, only slower on a large main.
func (r *Reader) Routes(table uint32) ([]routing.Route, error) {
	defer r.strict()()
	var out []routing.Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		filter := &netlink.Route{Table: int(table)}
		routes, err := retry(func() ([]netlink.Route, error) {
			return r.h.RouteListFiltered(fam, filter, netlink.RT_FILTER_TABLE)
		})
		if errors.Is(err, unix.ENOENT) {
			continue // under strict checking, a table this family has no route in does not exist
		}
		if r.noStrictCheck {
			routes = slices.DeleteFunc(routes, func(nr netlink.Route) bool { return uint32(nr.Table) != table })
		}
		if err != nil {
			return nil, fmt.Errorf("list routes of table %d: %w", table, err)
		}
		for _, nr := range routes {
			if fam == netlink.FAMILY_V6 && (nr.Type == unix.RTN_LOCAL || nr.Type == unix.RTN_MULTICAST || nr.Type == unix.RTN_ANYCAST) {
				continue // the kernel's local and multicast bookkeeping; blackhole and unreachable routes count
			}
			out = append(out, routeOf(fam, nr))
		}
	}
	return out, nil
}

// RoutesOn returns the unicast routes through the link with index, in every table but local, both families: the
// routes a change of the link's configuration can touch, foreign ones included. Under strict checking the kernel
// filters by link, so the cost follows the link's routes rather than a BGP-fed main table's.
func (r *Reader) RoutesOn(index int) ([]routing.Route, error) {
	defer r.strict()()
	var out []routing.Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := retry(func() ([]netlink.Route, error) {
			return r.h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC, LinkIndex: index}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF)
		})
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list routes of link %d: %w", index, err)
		}
		for _, nr := range routes {
			if nr.Table == unix.RT_TABLE_LOCAL || nr.Type != unix.RTN_UNICAST || nr.LinkIndex != index {
				continue
			}
			out = append(out, routeOf(fam, nr))
		}
	}
	return out, nil
}

// strict turns strict checking on for the dumps that follow, where the kernel has it, and returns what turns it
// off again. A kernel that refuses it (before 4.20) is remembered, and the callers filter in user space.
func (r *Reader) strict() (restore func()) {
	if r.noStrictCheck {
		return func() {}
	}
	if err := r.h.SetStrictCheck(true); err != nil {
		r.noStrictCheck = true
		return func() {}
	}
	return func() { r.h.SetStrictCheck(false) }
}

// routeOf is a kernel route as routing holds it: a default route has no destination.
func routeOf(fam int, nr netlink.Route) routing.Route {
	rt := routing.Route{Family: fam, Destination: prefix(nr.Dst), Table: uint32(nr.Table), LinkIndex: nr.LinkIndex, Metric: nr.Priority}
	if a, ok := netip.AddrFromSlice(nr.Gw); ok {
		rt.Gateway = a.Unmap()
	}
	if rt.Destination.IsValid() && rt.Destination.Bits() == 0 {
		rt.Destination = netip.Prefix{}
	}
	rt.Blocked = nr.Type != unix.RTN_UNICAST && nr.Type != unix.RTN_LOCAL && nr.Type != unix.RTN_BROADCAST && nr.Type != unix.RTN_MULTICAST && nr.Type != unix.RTN_ANYCAST
	for _, nh := range nr.MultiPath {
		rt.NextHopLinks = append(rt.NextHopLinks, nh.LinkIndex)
	}
	return rt
}

func prefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

// RouteGet asks the kernel which route a packet from src (none when invalid) to dst, carrying mark, takes through
// the policy rules, as `ip route get <dst> from <src> mark <mark>` does.
func (r *Reader) RouteGet(src, dst netip.Addr, mark uint32) (routing.Answer, error) {
	return r.Lookup(routing.Query{Src: src, Dst: dst, Mark: mark})
}

// Lookup asks the kernel how it routes q, as `ip route get DST [from SRC] [iif IIF] [mark MARK]` does: with Iif,
// as a packet arriving on that link (the lookup rp_filter makes has Iif lo).
func (r *Reader) Lookup(q routing.Query) (routing.Answer, error) {
	src, dst, mark := q.Src, q.Dst, q.Mark
	opts := &netlink.RouteGetOptions{Mark: mark, Iif: q.Iif}
	what := fmt.Sprintf("route get %s", dst)
	if src.IsValid() {
		opts.SrcAddr = net.IP(src.AsSlice())
		what += " from " + src.String()
	}
	if q.Iif != "" {
		what += " iif " + q.Iif
	}
	if mark != 0 {
		what += fmt.Sprintf(" mark %#x", mark)
	}
	routes, err := r.h.RouteGetWithOptions(net.IP(dst.AsSlice()), opts)
	if err != nil {
		return routing.Answer{}, fmt.Errorf("%s: %w", what, err)
	}
	if len(routes) == 0 {
		return routing.Answer{}, fmt.Errorf("%s: no answer", what)
	}
	a := routing.Answer{LinkIndex: routes[0].LinkIndex, Table: uint32(routes[0].Table)}
	if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok {
		a.Gateway = gw.Unmap()
	}
	return a, nil
}

// Addresses returns the addresses of the link with index.
func (r *Reader) Addresses(index int) ([]routing.Address, error) {
	link, err := r.h.LinkByIndex(index)
	if err != nil {
		return nil, fmt.Errorf("look up link %d: %w", index, err)
	}
	addrs, err := retry(func() ([]netlink.Addr, error) { return r.h.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	var out []routing.Address
	for _, a := range addrs {
		out = append(out, addressOf(a))
	}
	return out, nil
}

// addressOf is a kernel address as routing holds it.
func addressOf(a netlink.Addr) routing.Address {
	ad := routing.Address{Prefix: prefix(a.IPNet), Scope: uint8(a.Scope), DADFailed: a.Flags&unix.IFA_F_DADFAILED != 0, Dynamic: a.Flags&unix.IFA_F_PERMANENT == 0}
	if ad.Dynamic && a.ValidLft > 0 {
		ad.ValidSeconds = uint32(a.ValidLft)
	}
	if b, ok := netip.AddrFromSlice(a.Broadcast); ok && !b.Unmap().IsUnspecified() {
		ad.Broadcast = b.Unmap()
	}
	return ad
}

// LinkIndex returns the index of the link named name; ok is false when there is none.
func (r *Reader) LinkIndex(name string) (index int, ok bool, err error) {
	l, err := r.h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("look up link %s: %w", name, err)
	}
	return l.Attrs().Index, true, nil
}

// LinkName returns the name of the link with index.
func (r *Reader) LinkName(index int) (string, error) {
	l, err := r.h.LinkByIndex(index)
	if err != nil {
		return "", fmt.Errorf("look up link %d: %w", index, err)
	}
	return l.Attrs().Name, nil
}

// DeleteRule asks the kernel to delete a rule matching family, priority, addresses, table, protocol and action.
// The kernel deletes the first rule in its order that matches on the parts given: one that also selects on an
// interface or a mark matches too, so the caller checks which rule comes first. It is the only write symroute makes
// over netlink: networkd, told to keep foreign rules, no longer removes rules symroute dropped from its files once
// it has restarted and forgotten them.
func (r *Reader) DeleteRule(rule routing.Rule) error {
	nr := netlinkRule(rule)
	nr.Type = rule.Action
	nr.IifName = rule.Iif
	if rule.SuppressDefault {
		nr.SuppressPrefixlen = 0
	}
	if rule.Mark != 0 {
		nr.Mark = rule.Mark
		mask := rule.Mask
		nr.Mask = &mask
	}
	if err := r.h.RuleDel(nr); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete rule %d: %w", rule.Priority, err)
	}
	return nil
}

// netlinkRule is rule's family, priority, table, addresses and protocol as netlink's request carries them.
func netlinkRule(rule routing.Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = rule.Family
	nr.Priority = int(rule.Priority)
	nr.Table = int(rule.Table)
	nr.Src = ipNet(rule.From)
	nr.Dst = ipNet(rule.To)
	nr.Protocol = rule.Protocol
	return nr
}

// AddAddress puts an address back on the link with index, with its broadcast (the one it had).
func (r *Reader) AddAddress(index int, a routing.Address) error {
	link, err := r.h.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("look up link %d: %w", index, err)
	}
	na := &netlink.Addr{IPNet: ipNet(a.Prefix)}
	if a.Broadcast.IsValid() {
		na.Broadcast = net.IP(a.Broadcast.AsSlice())
	}
	if err := r.h.AddrAdd(link, na); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", a.Prefix, link.Attrs().Name, err)
	}
	return nil
}

// AddMainRoute puts a unicast route of main back through the link with index.
func (r *Reader) AddMainRoute(index int, rt routing.Route) error {
	nr := &netlink.Route{LinkIndex: index, Dst: ipNet(rt.Destination), Table: unix.RT_TABLE_MAIN, Priority: rt.Metric}
	if rt.Gateway.IsValid() {
		nr.Gw = net.IP(rt.Gateway.AsSlice())
	}
	if !rt.Destination.IsValid() {
		nr.Family = netlink.FAMILY_V4
		if rt.Gateway.Is6() {
			nr.Family = netlink.FAMILY_V6
		}
	}
	if err := r.h.RouteAdd(nr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add route %s via %s: %w", rt.Destination, rt.Gateway, err)
	}
	return nil
}

// AddRule adds a "from <address> lookup <table>" rule with the given priority and protocol: the follower's
// rules, which apply puts in place as the follower would, so that what it verifies does not wait on the unit.
func (r *Reader) AddRule(rule routing.Rule) error {
	if err := r.h.RuleAdd(netlinkRule(rule)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add rule %d from %s: %w", rule.Priority, rule.From, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	if !p.IsValid() {
		return nil
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Links lists the links of this namespace, without their addresses.
func (r *Reader) Links() ([]routing.Link, error) {
	links, err := retry(r.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]routing.Link, 0, len(links))
	for _, l := range links {
		out = append(out, linkOf(l))
	}
	return out, nil
}

// AllAddresses returns every address of the namespace by link index, in one dump.
func (r *Reader) AllAddresses() (map[int][]routing.Address, error) {
	addrs, err := retry(func() ([]netlink.Addr, error) { return r.h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	out := map[int][]routing.Address{}
	for _, a := range addrs {
		out[a.LinkIndex] = append(out[a.LinkIndex], addressOf(a))
	}
	return out, nil
}

func linkOf(l netlink.Link) routing.Link {
	a := l.Attrs()
	link := routing.Link{Index: a.Index, Name: a.Name, Kind: l.Type(), Up: a.Flags&net.FlagUp != 0, Loopback: a.Flags&net.FlagLoopback != 0,
		MAC: a.HardwareAddr.String(), OperState: a.OperState.String()}
	if link.Kind == "device" {
		link.Kind = ""
	}
	return link
}

// Inventory reads the links, addresses, default routes and rules of this namespace.
func (r *Reader) Inventory() (routing.Inventory, error) {
	var inv routing.Inventory
	links, err := retry(r.h.LinkList)
	if err != nil {
		return inv, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		link := linkOf(l)
		addrs, err := retry(func() ([]netlink.Addr, error) { return r.h.AddrList(l, netlink.FAMILY_ALL) })
		if err != nil {
			return inv, fmt.Errorf("list addresses of %s: %w", a.Name, err)
		}
		for _, ad := range addrs {
			p := prefix(ad.IPNet)
			if p.IsValid() && p.Addr().IsGlobalUnicast() {
				link.Addresses = append(link.Addresses, p)
			}
		}
		inv.Links = append(inv.Links, link)
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := retry(func() ([]netlink.Route, error) {
			return r.h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return inv, fmt.Errorf("list routes: %w", err)
		}
		for _, nr := range routes {
			dst := prefix(nr.Dst)
			if dst.IsValid() && dst.Bits() != 0 || nr.Type != unix.RTN_UNICAST {
				continue
			}
			rt := routing.Route{Family: fam, Table: uint32(nr.Table), LinkIndex: nr.LinkIndex, Metric: nr.Priority}
			if gw, ok := netip.AddrFromSlice(nr.Gw); ok {
				rt.Gateway = gw.Unmap()
			}
			inv.DefaultRoutes = append(inv.DefaultRoutes, rt)
		}
	}
	if inv.Rules, err = r.Rules(); err != nil {
		return inv, err
	}
	return inv, nil
}

// LinkFacts reads what networkd's [Match] looks at on the link called name: its kind, current and permanent MAC,
// type and driver, as networkd sees them. ok is false when there is no such link. On a handle into another
// namespace the driver stays unknown and the type comes from netlink alone (sysfs and ethtool would describe
// the process's own namespace).
func (r *Reader) LinkFacts(name string) (l networkfiles.Link, ok bool, err error) {
	link, err := r.h.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return l, false, nil
	}
	if err != nil {
		return l, false, fmt.Errorf("look up link %s: %w", name, err)
	}
	a := link.Attrs()
	l = networkfiles.Link{Name: name, Live: true, MAC: a.HardwareAddr, Type: a.EncapType}
	if len(a.PermHWAddr) > 0 && !allZero(a.PermHWAddr) {
		l.PermanentMAC = a.PermHWAddr
	}
	if k := link.Type(); k != "device" {
		l.Kind = k
	}
	if r.own {
		// networkd's Type= is the device type the kernel announces (DEVTYPE: wlan, bridge, vlan...), where there
		// is one, and the hardware type otherwise.
		if uevent, err := os.ReadFile(filepath.Join("/sys/class/net", name, "uevent")); err == nil {
			for _, line := range strings.Split(string(uevent), "\n") {
				if t, found := strings.CutPrefix(line, "DEVTYPE="); found && t != "" {
					l.Type = t
				}
			}
		}
		l.Driver, l.DriverKnown = driverOf(name)
	}
	return l, true, nil
}

// driverOf asks ethtool for the link's driver, as udev does for networkd's Driver=. A link without one (lo) says
// so; an error leaves the driver unknown.
func driverOf(name string) (string, bool) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		return "", true
	case err != nil:
		return "", false
	}
	return unix.ByteSliceToString(info.Driver[:]), true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
