// Package discover writes a host description for a host as it is now: its interfaces with global addresses,
// which one carries main's default route, each one's gateway, the components whose links and rules are there,
// and whether another .network file already configures a link. It is pure: the inventory is read elsewhere.
package discover

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/symroute/symroute/internal/core/reservations"
	"github.com/symroute/symroute/internal/core/routing"

	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/internal/core/ifname"
	"github.com/symroute/symroute/internal/core/networkfiles"
	"github.com/symroute/symroute/internal/core/report"
)

// signs tell a component by the links it creates (name prefixes) and the tables its rules point at.
var signs = []struct {
	component string
	links     []string
	tables    []uint32
}{
	{"calico", []string{"cali", "vxlan.calico", "vxlan-v6.calico", "tunl0", "wireguard.cali"}, nil},
	{"cilium", []string{"cilium_", "lxc"}, []uint32{2004, 2005}},
	{"flannel", []string{"flannel.", "cni0"}, nil},
	{"kube-router", []string{"kube-bridge", "kube-dummy-if"}, []uint32{77, 78, 79}},
	{"kube-proxy", []string{"kube-ipvs0"}, nil},
	{"antrea", []string{"antrea-"}, []uint32{141}},
	{"weave-net", []string{"weave", "vethwe"}, nil},
	{"aws-vpc-cni", []string{"eni"}, nil},
	{"tailscale", []string{"tailscale"}, []uint32{52}},
	{"docker", []string{"docker0", "br-"}, nil},
}

// componentLink reports whether a link belongs to a component rather than to the host's own networking.
func componentLink(name string) bool {
	if strings.HasPrefix(name, "veth") {
		return true
	}
	for _, s := range signs {
		for _, p := range s.links {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
	}
	return false
}

// Describe renders inv as a host description. files are the .network files networkd would consider (nil when
// unknown): a link some specific file already configures is described in drop-in mode.
func Describe(inv routing.Inventory, files []networkfiles.File) []byte {
	var b strings.Builder
	b.WriteString("# Discovered by symroute discover. Review it: check the gateways, list the pod and service\n")
	b.WriteString("# CIDRs under cluster_cidrs if this is a Kubernetes node, then run symroute check.\n")
	b.WriteString("version: 1\n")

	components := guessComponents(inv)
	if len(components) > 0 {
		fmt.Fprintf(&b, "# Guessed from the links and rules present.\ncni: [%s]\n", strings.Join(components, ", "))
	}
	if kubernetes(components) {
		b.WriteString("# A Kubernetes CNI runs here: list the pod and service CIDRs, e.g. [10.244.0.0/16, 10.96.0.0/12].\ncluster_cidrs: []\n")
	}

	mainDefault := map[bool]routing.Route{} // by "is IPv6"
	for _, r := range inv.DefaultRoutes {
		if r.Table != 254 || !r.Gateway.IsValid() {
			continue
		}
		v6 := r.Gateway.Is6()
		if cur, ok := mainDefault[v6]; !ok || r.Metric < cur.Metric {
			mainDefault[v6] = r
		}
	}

	b.WriteString("interfaces:\n")
	for _, l := range inv.Links {
		if l.Loopback || !l.Up || len(l.Addresses) == 0 || componentLink(l.Name) {
			continue
		}
		if why := ifname.Check(l.Name); why != "" {
			// The kernel takes names symroute refuses (a glob, '=', an escape sequence); say so in a comment,
			// escaped, rather than write a description check would refuse.
			fmt.Fprintf(&b, "  # link %s is left out: %s\n", report.Quote(l.Name), why)
			continue
		}
		fmt.Fprintf(&b, "  - name: %s\n", yamlString(l.Name))
		if l.MAC != "" {
			fmt.Fprintf(&b, "    # MAC %s; to match by it instead of the name: match: {permanent_mac: \"%s\"}\n", l.MAC, l.MAC)
		}
		if f, ok := networkfiles.FirstMatch(files, networkfiles.Link{Name: l.Name}); ok && f.Specific(networkfiles.Link{Name: l.Name}) {
			fmt.Fprintf(&b, "    # %s configures %s now; symroute adds its routing to it.\n    mode: drop-in\n", report.Printable("/"+f.Path), l.Name)
		}
		addrs := make([]string, len(l.Addresses))
		for i, a := range l.Addresses {
			addrs[i] = a.String()
		}
		fmt.Fprintf(&b, "    addresses: [%s]\n", strings.Join(addrs, ", "))
		for _, v6 := range []bool{false, true} {
			key := "gateway"
			if v6 {
				key = "gateway6"
			}
			if gw, ok := gatewayOf(inv, l, v6); ok {
				fmt.Fprintf(&b, "    %s: %s\n", key, gw)
			} else if hasFamily(l, v6) {
				fmt.Fprintf(&b, "    # %s: no default route leaves by %s in any table; add it if the link has a router\n", key, l.Name)
			}
		}
		if r, ok := mainDefault[false]; ok && r.LinkIndex == l.Index {
			b.WriteString("    default_route: true\n")
		} else if r, ok := mainDefault[true]; ok && r.LinkIndex == l.Index && mainDefault[false].LinkIndex == 0 {
			b.WriteString("    default_route: true\n")
		}
	}
	return []byte(b.String())
}

// yamlString writes s as a YAML string, quoted where YAML would read it otherwise: a valid interface name can
// still start with '#' or '&', or read as a number or null.
func yamlString(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return strconv.Quote(s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

func hasFamily(l routing.Link, v6 bool) bool {
	for _, a := range l.Addresses {
		if a.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}

// gatewayOf finds the router a link's default route uses: in main first (lowest metric), then in any other
// table, as a host with DHCP on several NICs or earlier policy routing has them.
func gatewayOf(inv routing.Inventory, l routing.Link, v6 bool) (netip.Addr, bool) {
	rank := func(r routing.Route) [2]int { // main before other tables, then the lowest metric
		notMain := 1
		if r.Table == 254 {
			notMain = 0
		}
		return [2]int{notMain, r.Metric}
	}
	var best *routing.Route
	for i, r := range inv.DefaultRoutes {
		if r.LinkIndex != l.Index || !r.Gateway.IsValid() || r.Gateway.Is6() != v6 || !onLink(l, r.Gateway) {
			continue
		}
		if best == nil || less(rank(r), rank(*best)) {
			best = &inv.DefaultRoutes[i]
		}
	}
	if best == nil {
		return netip.Addr{}, false
	}
	return best.Gateway, true
}

func less(a, b [2]int) bool { return a[0] < b[0] || a[0] == b[0] && a[1] < b[1] }

// onLink keeps only gateways check would accept: inside one of the link's subnets, or IPv6 link-local.
func onLink(l routing.Link, gw netip.Addr) bool {
	if gw.Is6() && gw.IsLinkLocalUnicast() {
		return true
	}
	for _, a := range l.Addresses {
		if a.Masked().Contains(gw) && a.Addr() != gw {
			return true
		}
	}
	return false
}

func guessComponents(inv routing.Inventory) []string {
	found := map[string]bool{}
	for _, s := range signs {
		for _, l := range inv.Links {
			for _, p := range s.links {
				if strings.HasPrefix(l.Name, p) {
					found[s.component] = true
				}
			}
		}
		for _, r := range inv.Rules {
			for _, t := range s.tables {
				if r.Table == t {
					found[s.component] = true
				}
			}
		}
	}
	out := make([]string, 0, len(found))
	for c := range found {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func kubernetes(components []string) bool {
	for _, c := range components {
		if comp, ok := reservations.Lookup(c); ok && comp.RunsPods {
			return true
		}
	}
	return false
}
