package generator

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/record"
)

// Effects is what one of symroute's networkd files makes networkd configure: the link's addresses, the rules and
// the routes. Comparing a file's old and new Effects says what a change removes before it is made.
type Effects struct {
	Addresses []netip.Prefix
	Rules     []record.Rule
	Routes    []RouteEffect
	// Dynamic says the file runs DHCPv4 or accepts router advertisements: the link's addresses come from
	// them, and go when the file does.
	Dynamic bool
}

// RouteEffect is one [Route] section.
type RouteEffect struct {
	Destination netip.Prefix
	Gateway     netip.Addr
	Table       uint32 // 254 for main
}

func (r RouteEffect) String() string {
	s := "default"
	if r.Destination.IsValid() {
		s = r.Destination.String()
	}
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	if r.Table == 254 {
		return s
	}
	return s + " table " + strconv.FormatUint(uint64(r.Table), 10)
}

// ReadEffects reads a .network file or drop-in symroute rendered (the second wall has checked every line of it,
// so a line-by-line read is exact). Anything else yields what it can recognise.
func ReadEffects(data []byte) Effects {
	var e Effects
	section := ""
	var rule record.Rule
	var route RouteEffect
	family := ""
	flush := func() {
		switch section {
		case "RoutingPolicyRule":
			if rule.Mark == 0 && !rule.SuppressDefault {
				e.Rules = append(e.Rules, rule)
				break
			}
			// A mark or suppress rule has no address to tell its family by: networkd makes one per family it
			// names.
			for _, f := range []struct {
				n    int
				name string
			}{{4, "ipv4"}, {6, "ipv6"}} {
				if family == f.name || family == "both" || family == "" && f.n == 4 { // networkd's default is IPv4
					r := rule
					r.Family = f.n
					e.Rules = append(e.Rules, r)
				}
			}
		case "Route":
			e.Routes = append(e.Routes, route)
		}
		rule, route, family = record.Rule{}, RouteEffect{Table: 254}, ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, ok := strings.CutPrefix(line, "["); ok {
			flush()
			section = strings.TrimSuffix(name, "]")
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		switch section + "." + key {
		case "Network.DHCP":
			e.Dynamic = e.Dynamic || value == "ipv4"
		case "Network.IPv6AcceptRA":
			e.Dynamic = e.Dynamic || value == "yes"
		case "Network.Address":
			if p, err := netip.ParsePrefix(value); err == nil {
				e.Addresses = append(e.Addresses, p)
			}
		case "Route.Destination":
			route.Destination, _ = netip.ParsePrefix(value)
		case "Route.Gateway":
			route.Gateway, _ = netip.ParseAddr(value)
		case "Route.Table":
			route.Table = table(value)
		case "RoutingPolicyRule.From":
			rule.From, _ = netip.ParsePrefix(value)
		case "RoutingPolicyRule.To":
			rule.To, _ = netip.ParsePrefix(value)
		case "RoutingPolicyRule.Table":
			rule.Table = table(value)
		case "RoutingPolicyRule.Priority":
			p, _ := strconv.ParseUint(value, 10, 32)
			rule.Priority = uint32(p)
		case "RoutingPolicyRule.FirewallMark":
			v, m, _ := strings.Cut(value, "/")
			mark, _ := strconv.ParseUint(v, 0, 32)
			mask, _ := strconv.ParseUint(m, 0, 32)
			rule.Mark, rule.Mask = uint32(mark), uint32(mask)
		case "RoutingPolicyRule.SuppressPrefixLength":
			rule.SuppressDefault = value == "0"
		case "RoutingPolicyRule.IncomingInterface":
			rule.Iif = value
		case "RoutingPolicyRule.Family":
			family = value
		}
	}
	flush()
	return e
}

func table(s string) uint32 {
	if s == "main" {
		return 254
	}
	t, _ := strconv.ParseUint(s, 10, 32)
	return uint32(t)
}

// Lost returns what after no longer has of before.
func Lost(before, after Effects) Effects {
	var out Effects
	for _, a := range before.Addresses {
		if !contains(after.Addresses, a) {
			out.Addresses = append(out.Addresses, a)
		}
	}
	for _, r := range before.Rules {
		if !contains(after.Rules, r) {
			out.Rules = append(out.Rules, r)
		}
	}
	for _, r := range before.Routes {
		if !contains(after.Routes, r) {
			out.Routes = append(out.Routes, r)
		}
	}
	return out
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Released rewrites one of symroute's own .network files for symroute remove: it keeps what gives the link its
// addresses ([Match], [Network] and main's default route) and drops the table's routes and the rules, and its
// header says so. networkd would remove the link's addresses with the file; remove --all deletes it.
func Released(data []byte, link string) []byte {
	paragraphs := strings.Split(strings.TrimRight(string(data), "\n"), "\n\n")
	var out []string
	for i, p := range paragraphs {
		if i == 0 && strings.HasPrefix(p, ownership.HeaderPrefix) {
			first, _, _ := strings.Cut(p, "\n")
			out = append(out, first+"\n"+
				"# Released by \"symroute remove\": symroute's routing is gone, and this file\n"+
				"# only keeps "+link+"'s addresses. Move them to a .network file of your\n"+
				"# own, then run \"symroute remove --all\" to delete it.")
			continue
		}
		section := ""
		for _, line := range strings.Split(p, "\n") {
			if strings.HasPrefix(line, "[") {
				section = line
				break
			}
		}
		// The lease's and advertisements' routes go back to main with the RouteTable= sections.
		if section == "[RoutingPolicyRule]" || section == "[Route]" && strings.Contains(p, "\nTable=") || section == "[DHCPv4]" || section == "[IPv6AcceptRA]" {
			continue
		}
		out = append(out, p)
	}
	return []byte(strings.Join(out, "\n\n") + "\n")
}
