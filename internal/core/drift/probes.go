package drift

import (
	"fmt"
	"net/netip"

	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/core/routing"
)

// Probe is one question for the kernel: from a managed address to a destination, which way would a packet
// leave? The answer must be the address's interface, through its table. This is what proves the asymmetric case
// fixed: a reply to a peer on another interface's subnet, or beyond every subnet, leaves where the request came in.
type Probe struct {
	// Position is the interface's index in the plan.
	Position int
	Src, Dst netip.Addr
	Why      string
	Origin   report.Path
	// Mark, when set, makes the probe a reply on a connection the interface tracks, from no particular address:
	// a pod's, a VIP's, one the description does not list.
	Mark uint32
}

// ProbeResult is a probe with the kernel's answer, or the error it gave.
type ProbeResult struct {
	Probe
	Answer routing.Answer
	Err    string
}

// outsideCandidates are destinations for "beyond every local subnet": documentation ranges first. A route
// lookup sends nothing, so no packet reaches them.
var outsideCandidates = []netip.Addr{
	netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("1.1.1.1"),
	netip.MustParseAddr("2001:db8:ffff:ffff::1"), netip.MustParseAddr("3fff:ffff::1"), netip.MustParseAddr("2606:4700::1111"),
}

// Probes lists the questions for every managed address whose interface has a gateway in its family (without one,
// the table has no way out and traffic beyond the subnets is main's to route).
func Probes(p *plan.Plan, followed map[string][]netip.Addr, leaseGateways map[string][2]bool) []Probe {
	// A lease or advertisement without a router (a storage or backplane LAN) gives the table no way beyond its
	// subnet: nothing to probe there.
	routed := func(ifc plan.Interface, v6 bool) bool {
		i := 0
		if v6 {
			i = 1
		}
		return servesFamily(ifc, v6) && leaseGateways[ifc.Name][i]
	}
	local := map[netip.Addr]bool{}
	var subnets, cluster []netip.Prefix
	for _, ifc := range p.Interfaces {
		for _, a := range ifc.Addresses {
			local[a.Addr()] = true
			subnets = append(subnets, a.Masked())
		}
	}
	for _, r := range p.ClusterRules {
		cluster = append(cluster, r.To)
	}
	inAny := func(a netip.Addr, ps []netip.Prefix) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	outside := map[bool]netip.Addr{}
	for _, c := range outsideCandidates {
		if _, found := outside[c.Is6()]; !found && !inAny(c, subnets) && !inAny(c, cluster) {
			outside[c.Is6()] = c
		}
	}

	var probes []Probe
	for i, ifc := range p.Interfaces {
		for j, a := range ifc.Addresses {
			v6 := a.Addr().Is6()
			gw := ifc.Gateway
			if v6 {
				gw = ifc.Gateway6
			}
			if !gw.IsValid() {
				continue
			}
			origin := report.Path{"interfaces", i, "addresses", j}
			if dst, ok := outside[v6]; ok {
				probes = append(probes, Probe{Position: i, Src: a.Addr(), Dst: dst, Why: "beyond every local subnet", Origin: origin})
			}
			// One peer on another interface's subnet: main has a more specific route to it, through the other
			// interface, and the probe shows the rule and table answer instead. Rules and table routes are
			// compared exactly elsewhere, so a peer on every other subnet would prove the same again, at a cost
			// that grows with the square of the interfaces.
			if dst, why, ok := peerOnAnother(p, i, a.Addr(), v6, local, cluster, inAny); ok {
				probes = append(probes, Probe{Position: i, Src: a.Addr(), Dst: dst, Why: why, Origin: origin})
			}
		}
		// The addresses a dynamic interface has now, from its lease or advertisements: through the gateway the
		// lease or advertisement gave, to the same destination beyond every subnet.
		for _, a := range followed[ifc.Name] {
			if dst, ok := outside[a.Is6()]; ok && routed(ifc, a.Is6()) && !local[a] {
				probes = append(probes, Probe{Position: i, Src: a, Dst: dst, Why: "beyond every local subnet, from its address now", Origin: dynamicOrigin(ifc, a.Is6())})
			}
		}
	}
	// A reply on a connection each tracked interface marked, from an address no rule names: a rule of another
	// program ahead of the mark rules (a lookup of everything, another mark rule) shows here.
	for _, ifc := range p.Tracked() {
		origin := report.Path{"interfaces", ifc.Position, "track_connections"}
		for _, v6 := range []bool{false, true} {
			gw := ifc.Gateway
			if v6 {
				gw = ifc.Gateway6
			}
			if dst, ok := outside[v6]; ok && (gw.IsValid() || routed(ifc, v6)) {
				probes = append(probes, Probe{Position: ifc.Position, Dst: dst, Why: "beyond every local subnet", Origin: origin, Mark: ifc.Mark})
			}
		}
	}
	return probes
}

// peerOnAnother picks a peer for interface i's address a: in the first subnet of the same family on the next
// interface that has one, wrapping around.
func peerOnAnother(p *plan.Plan, i int, a netip.Addr, v6 bool, local map[netip.Addr]bool, cluster []netip.Prefix, inAny func(netip.Addr, []netip.Prefix) bool) (netip.Addr, string, bool) {
	n := len(p.Interfaces)
	for step := 1; step < n; step++ {
		other := p.Interfaces[(i+step)%n]
		for _, oa := range other.Addresses {
			s := oa.Masked()
			if s.Addr().Is6() != v6 || oa.IsSingleIP() || s.Contains(a) {
				continue
			}
			if dst, ok := hostIn(s, local); ok && !inAny(dst, cluster) {
				return dst, fmt.Sprintf("a peer on %s's subnet %s", other.Name, s), true
			}
		}
	}
	return netip.Addr{}, "", false
}

// hostIn picks an address in s that is not one of the host's own: a lookup of a local address answers from the
// local table, which proves nothing.
func hostIn(s netip.Prefix, local map[netip.Addr]bool) (netip.Addr, bool) {
	a := s.Addr().Next()
	for range 64 {
		if !s.Contains(a) {
			return netip.Addr{}, false
		}
		if !local[a] {
			return a, true
		}
		a = a.Next()
	}
	return netip.Addr{}, false
}

// servesFamily says whether a lease (IPv4) or advertisements (IPv6) give the interface a gateway of the family.
func servesFamily(ifc plan.Interface, v6 bool) bool {
	if v6 {
		return ifc.AcceptRA
	}
	return ifc.DHCP4
}

// dynamicOrigin is where the description makes an interface take addresses of a family: accept_ra for IPv6 and
// dhcp4 for IPv4, where the interface has them, else the one it has.
func dynamicOrigin(ifc plan.Interface, v6 bool) report.Path {
	if ifc.DHCP4 && (!v6 || !ifc.AcceptRA) {
		return report.Path{"interfaces", ifc.Position, "dhcp4"}
	}
	return report.Path{"interfaces", ifc.Position, "accept_ra"}
}
