package description

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/core/reservations"
)

// validate checks what no single value shows: references between interfaces and addresses. Values that failed
// to parse are skipped, so each mistake is reported once.
func validate(h *Host, d *decoder) {
	at := func(p report.Path) report.Pos { return h.Pos(p) }
	errorf := func(p report.Path, format string, args ...any) { d.errorAt(p, at(p), format, args...) }
	warnf := func(p report.Path, format string, args ...any) { d.r.Add(report.Warning, p, at(p), format, args...) }

	if _, ok := h.positions[report.Path{"interfaces"}.String()]; ok && len(h.Interfaces) == 0 && !d.broken(report.Path{"interfaces"}) {
		errorf(report.Path{"interfaces"}, "is empty; list at least one interface")
	}

	names := map[string]int{}
	macs := map[string]int{}
	addrs := map[netip.Addr]report.Path{}
	defaultRoute := -1
	for i, ifc := range h.Interfaces {
		p := report.Path{"interfaces", i}
		if ifc.Name != "" {
			if j, dup := names[ifc.Name]; dup {
				errorf(p.Key("name"), "%s is already the name of interfaces[%d]; each interface appears once", ifc.Name, j)
			} else {
				names[ifc.Name] = i
			}
		}
		if ifc.PermanentMAC != nil {
			m := ifc.PermanentMAC.String()
			if j, dup := macs[m]; dup {
				errorf(p.Key("match", "permanent_mac"), "%s already matches interfaces[%d]; one link cannot be two interfaces", m, j)
			} else {
				macs[m] = i
			}
		}
		if _, ok := h.positions[p.Key("addresses").String()]; ok && len(ifc.Addresses) == 0 && !d.broken(p.Key("addresses")) && !ifc.Dynamic() {
			errorf(p.Key("addresses"), "is empty; list the interface's addresses, since its rules are \"from <address>\"")
		}
		for j, a := range ifc.Addresses {
			ap := p.Key("addresses", j)
			if prev, dup := addrs[a.Addr()]; dup {
				errorf(ap, "%s is already listed at %s; an address belongs to one interface, once", a.Addr(), prev)
				continue
			}
			addrs[a.Addr()] = ap
		}
		// With dhcp4 or accept_ra, checkDynamic refuses the family's gateway whatever it is; with the addresses of
		// nodes not yet known, the gateway is checked on each node.
		pending := ifc.AddressesFromNode && len(ifc.Addresses) == 0
		if !ifc.DHCP4 && !pending {
			checkGateway(h, d, p, ifc, false, errorf)
		}
		if !ifc.AcceptRA && !pending {
			checkGateway(h, d, p, ifc, true, errorf)
		}
		if ifc.DefaultRoute {
			if defaultRoute >= 0 {
				errorf(p.Key("default_route"), "interfaces[%d] already carries the main table's default route; set default_route: true on one interface only", defaultRoute)
			} else {
				defaultRoute = i
			}
			if !ifc.Gateway.IsValid() && !ifc.Gateway6.IsValid() && !d.broken(p.Key("gateway")) && !d.broken(p.Key("gateway6")) {
				errorf(p.Key("default_route"), "needs a gateway (or gateway6) on this interface to route through")
			}
		}
		checkDynamic(h, p, ifc, errorf)
		if ifc.TrackConnections && !ifc.Dynamic() && !ifc.Gateway.IsValid() && !ifc.Gateway6.IsValid() && !d.broken(p.Key("gateway")) && !d.broken(p.Key("gateway6")) {
			errorf(p.Key("track_connections"), "needs a gateway (or gateway6) on this interface: replies to clients beyond its subnet leave through that gateway")
		}
		// The kernel applies max(conf.all, conf.<if>) with off=0 < strict=1 < loose=2.
		if h.RPFilterAll != nil && ifc.RPFilter < *h.RPFilterAll {
			warnf(p.Key("rp_filter"), "%s cannot take effect: the kernel uses the larger of conf.all (%s) and the interface's value, where off < strict < loose; lower rp_filter_all or accept the larger value",
				ifc.RPFilter, *h.RPFilterAll)
		}
	}

	checkMarkMask(h, d, errorf, warnf)

	subnets := indexSubnets(h)
	overlaps := capped{warnf: warnf, what: "overlapping subnets"}
	checkOverlaps(h, subnets, &overlaps)
	overlaps.done()
	clusterOverlaps := capped{warnf: warnf, what: "overlaps of cluster_cidrs with interface subnets"}
	defer clusterOverlaps.done()

	seen := map[netip.Prefix]int{}
	for i, c := range h.ClusterCIDRs {
		p := report.Path{"cluster_cidrs", i}
		if j, dup := seen[c]; dup {
			errorf(p, "%s is already listed at cluster_cidrs[%d]", c, j)
			continue
		}
		seen[c] = i
		// Two prefixes overlap only when one contains the other: look up c's supernets, then the subnets
		// inside c by their own supernets below.
		for _, s := range subnets.within(c, true) {
			if !clusterOverlaps.next() {
				if clusterOverlaps.firstUnlisted() {
					clusterOverlaps.first = p
				}
				continue
			}
			ifc := h.Interfaces[s.iface]
			warnf(p, "%s overlaps %s's subnet %s: replies to that subnet would use the main table, not %s's; list only pod and service ranges",
				c, interfaceLabel(ifc, s.iface), s.subnet, interfaceLabel(ifc, s.iface))
		}
	}
	if len(seen) > 0 {
		for _, s := range subnets.order {
			for bits := s.Bits() - 1; bits >= 0; bits-- {
				i, ok := seen[netip.PrefixFrom(s.Addr(), bits).Masked()]
				if ok && !clusterOverlaps.next() {
					if clusterOverlaps.firstUnlisted() {
						clusterOverlaps.first = report.Path{"cluster_cidrs", i}
					}
					continue
				}
				if ok {
					site := subnets.sites[s][0]
					ifc := h.Interfaces[site.iface]
					warnf(report.Path{"cluster_cidrs", i}, "%s overlaps %s's subnet %s: replies to that subnet would use the main table, not %s's; list only pod and service ranges",
						h.ClusterCIDRs[i], interfaceLabel(ifc, site.iface), s, interfaceLabel(ifc, site.iface))
				}
			}
		}
	}
	if len(h.ClusterCIDRs) == 0 {
		for i, c := range h.Components {
			if comp, ok := reservations.Lookup(c.Name); ok && comp.RunsPods {
				warnf(report.Path{"cni", i}, "%s runs pods but cluster_cidrs is empty: the host's replies to pods would follow the interface tables to the external gateway; list the pod and service CIDRs", c.Name)
				break
			}
		}
	}
}

// maxSimilarWarnings bounds how many warnings of one kind are listed: nested prefixes over thousands of addresses
// would otherwise give millions of lines for one mistake.
const maxSimilarWarnings = 20

// capped lists at most maxSimilarWarnings warnings of one kind and counts the rest: next says whether to list
// the next one (decide before building its message, which is most of the cost), done adds the count.
type capped struct {
	warnf func(report.Path, string, ...any)
	what  string
	n     int
	first report.Path
}

func (c *capped) next() (list bool) {
	c.n++
	return c.n <= maxSimilarWarnings
}

// firstUnlisted says whether the warning next refused is the first not listed, whose path the count reports at.
func (c *capped) firstUnlisted() bool { return c.n == maxSimilarWarnings+1 }

func (c *capped) done() {
	if c.n > maxSimilarWarnings {
		c.warnf(c.first, "%d more %s, like the ones above, are not listed", c.n-maxSimilarWarnings, c.what)
	}
}

func interfaceLabel(ifc Interface, i int) string {
	if ifc.Name != "" {
		return ifc.Name
	}
	return fmt.Sprintf("interfaces[%d]", i)
}

// checkGateway requires a gateway of the right family that the kernel can reach on the link: inside one of the
// interface's subnets, or, for IPv6, link-local.
func checkGateway(h *Host, d *decoder, p report.Path, ifc Interface, v6 bool, errorf func(report.Path, string, ...any)) {
	key, gw, family := "gateway", ifc.Gateway, "IPv4"
	if v6 {
		key, gw, family = "gateway6", ifc.Gateway6, "IPv6"
	}
	gp := p.Key(key)
	if !gw.IsValid() || d.broken(p.Key("addresses")) {
		return
	}
	if gw.Is6() != v6 {
		other := "gateway6"
		if v6 {
			other = "gateway"
		}
		errorf(gp, "%s is not an %s address; put it under %s", gw, family, other)
		return
	}
	var subnets []string
	for _, a := range ifc.Addresses {
		if a.Addr().Is6() != v6 {
			continue
		}
		if a.Addr() == gw {
			errorf(gp, "%s is this interface's own address; give the next-hop router's address", gw)
			return
		}
		if a.Masked().Contains(gw) {
			if v6 || a.Bits() > 30 || gw != a.Masked().Addr() && gw != broadcast(a) {
				return
			}
			errorf(gp, "%s is the network or broadcast address of %s, not a router's; give the next hop's own address", gw, a.Masked())
			return
		}
		subnets = append(subnets, a.Masked().String())
	}
	if v6 && gw.IsLinkLocalUnicast() {
		return
	}
	if len(subnets) == 0 {
		errorf(gp, "%s has no %s address on this interface to reach it from; add one to addresses or remove %s", gw, family, key)
		return
	}
	errorf(gp, "%s is outside every %s subnet of this interface (%s); the kernel cannot reach it on this link, so use an address inside one of them or add its subnet to addresses",
		gw, family, strings.Join(subnets, ", "))
}

// checkDynamic refuses what cannot go with addresses that a DHCPv4 lease or router advertisements hand out.
func checkDynamic(h *Host, p report.Path, ifc Interface, errorf func(report.Path, string, ...any)) {
	if !ifc.Dynamic() {
		return
	}
	key := "dhcp4"
	if !ifc.DHCP4 {
		key = "accept_ra"
	}
	if ifc.DefaultRoute {
		errorf(p.Key("default_route"), "cannot go with %s: the %s's routes go into the interface's own table, not main. Leave the interface that carries main's default route to its own configuration (do not list it), or give it static addresses and a gateway",
			key, map[string]string{"dhcp4": "lease", "accept_ra": "advertisement"}[key])
	}
	if ifc.DHCP4 && ifc.Gateway.IsValid() {
		errorf(p.Key("gateway"), "cannot go with dhcp4: the router the DHCP lease names is the gateway; remove gateway")
	}
	if ifc.AcceptRA && ifc.Gateway6.IsValid() {
		errorf(p.Key("gateway6"), "cannot go with accept_ra: the router that advertises is the gateway; remove gateway6")
	}
}

// site is where a subnet appears: the interface, and its first address in that subnet.
type site struct {
	subnet      netip.Prefix
	iface, addr int
}

// subnetIndex maps each distinct subnet to the interfaces that have it, in description order, each once.
type subnetIndex struct {
	sites map[netip.Prefix][]site
	order []netip.Prefix
}

func indexSubnets(h *Host) subnetIndex {
	x := subnetIndex{sites: map[netip.Prefix][]site{}}
	for i, ifc := range h.Interfaces {
		for k, a := range ifc.Addresses {
			s := a.Masked()
			sites := x.sites[s]
			if len(sites) == 0 {
				x.order = append(x.order, s)
				// Most subnets are one interface's: a slice of one, with no room to grow, saves the most.
				x.sites[s] = []site{{s, i, k}}
				continue
			}
			// An interface's addresses are visited together, so a repeat of it is always the last site.
			if sites[len(sites)-1].iface != i {
				x.sites[s] = append(sites, site{s, i, k})
			}
		}
	}
	return x
}

// within returns the first site of every indexed subnet that contains p (p itself included when orEqual).
func (x subnetIndex) within(p netip.Prefix, orEqual bool) []site {
	var out []site
	top := p.Bits() - 1
	if orEqual {
		top = p.Bits()
	}
	for bits := top; bits >= 0; bits-- {
		if sites, ok := x.sites[netip.PrefixFrom(p.Addr(), bits).Masked()]; ok {
			out = append(out, sites[0])
		}
	}
	return out
}

// checkOverlaps warns when two interfaces share address space: the kernel's choice between them in main for that
// space is arbitrary, though each interface's own table still answers from its addresses. Two prefixes overlap
// only when one contains the other, so looking each distinct subnet's supernets up in the index finds every
// overlapping pair of subnets in linear time. Each pair is reported once, at the later interface, naming the
// first interface that has the other subnet: many interfaces sharing one subnet cost a warning each, not one per
// pair of them.
func checkOverlaps(h *Host, x subnetIndex, c *capped) {
	warn := func(a, b site) {
		later, earlier := a, b
		if b.iface > a.iface {
			later, earlier = b, a
		}
		if !c.next() {
			if c.firstUnlisted() {
				c.first = report.Path{"interfaces", later.iface, "addresses", later.addr}
			}
			return
		}
		c.warnf(report.Path{"interfaces", later.iface, "addresses", later.addr}, "subnet %s overlaps %s's %s: traffic from the host to that subnet without a chosen source leaves by whichever route main lists first",
			later.subnet, interfaceLabel(h.Interfaces[earlier.iface], earlier.iface), earlier.subnet)
	}
	for _, s := range x.order {
		sites := x.sites[s]
		for _, other := range sites[1:] {
			warn(other, sites[0])
		}
		for bits := s.Bits() - 1; bits >= 0; bits-- {
			outer, ok := x.sites[netip.PrefixFrom(s.Addr(), bits).Masked()]
			if !ok {
				continue
			}
			// One pair of different interfaces: outer's sites are on distinct interfaces, so this looks at two
			// of them at most.
			for _, o := range outer {
				if o.iface != sites[0].iface {
					warn(sites[0], o)
					break
				}
				if len(sites) > 1 {
					warn(sites[1], o)
					break
				}
			}
		}
	}
}

// checkMarkMask refuses a pinned mark_mask that is not one run of bits (the interfaces' marks are numbers counted
// within it), and warns when nothing uses it.
func checkMarkMask(h *Host, d *decoder, errorf, warnf func(report.Path, string, ...any)) {
	if h.MarkMask == nil {
		return
	}
	p := report.Path{"mark_mask"}
	m := *h.MarkMask
	if low := m & -m; (m+low)&m != 0 {
		errorf(p, "0x%x is not one run of bits; give contiguous bits, like 0x3000, so each tracked interface's mark is a number within them", m)
		return
	}
	if !slices.ContainsFunc(h.Interfaces, func(i Interface) bool { return i.TrackConnections }) {
		warnf(p, "has no effect: no interface sets track_connections")
	}
}
