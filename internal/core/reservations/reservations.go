// Package reservations is symroute's record of which routing tables, rule priorities and fwmark bits other
// components on a node claim, so that symroute allocates around them and refuses pinned values inside them.
//
// Every component carries where its figures were read; SOURCES.md beside this file lists the commits. "Derived"
// marks a value worked out from code rather than stated by the project.
// Only claims in the host network namespace are listed: tables inside a pod's namespace cannot collide with ours.
package reservations

import (
	"fmt"
	"sort"
	"strings"
)

// Range is an inclusive range of table ids or rule priorities.
type Range struct{ Min, Max uint32 }

// Contains reports whether v is in r.
func (r Range) Contains(v uint32) bool { return v >= r.Min && v <= r.Max }

// Overlaps reports whether r and o share a value.
func (r Range) Overlaps(o Range) bool { return r.Min <= o.Max && o.Min <= r.Max }

func (r Range) String() string {
	if r.Min == r.Max {
		return fmt.Sprint(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// Claim is one range a component uses, with what it uses it for.
type Claim struct {
	Range
	Use string
}

// Mark is an fwmark value/mask a component sets or tests.
type Mark struct {
	Value, Mask uint32
	Use         string
}

// Component is a CNI, agent, VPN or network manager that may share a node with symroute.
type Component struct {
	Name       string
	Tables     []Claim
	Priorities []Claim
	Marks      []Mark
	// FlushesForeign: it deletes routes or rules it did not create inside its claim, so sharing is not an option.
	FlushesForeign bool
	// RunsPods: a Kubernetes CNI whose pods the host talks to, so the host's replies to pods need the cluster
	// CIDRs routed by main.
	RunsPods bool
	// MoveClaim tells the user how to move the component's claim out of symroute's way, where a knob exists.
	MoveClaim string
	Sources   []string
}

// Kernel holds the ids the kernel itself reserves; they are refused whatever the description declares.
var Kernel = Component{
	Name: "kernel",
	Tables: []Claim{
		{Range{0, 0}, "RT_TABLE_UNSPEC: not a table"},
		// 252 is RT_TABLE_COMPAT, what the 8-bit rtm_table field reads when the real id is above 255.
		{Range{252, 252}, "RT_TABLE_COMPAT"},
		{Range{253, 255}, "default, main and local tables"},
	},
	Priorities: []Claim{
		{Range{0, 0}, "the local table rule; nothing may precede it"},
		{Range{32766, 32767}, "the main and default table rules; symroute's rules must come before main"},
	},
	Sources: []string{"iproute2 include/uapi/linux/rtnetlink.h (enum rt_class_t)", "kernel net/core/fib_rules.c, net/ipv6/fib6_rules.c"},
}

// Components is every component symroute knows, by the name used in the description's cni: list.
var Components = []Component{
	{
		Name:     "calico",
		RunsPods: true,
		Tables: []Claim{
			// Felix treats the whole RouteTableRanges as its own and flushes foreign routes there; tables 1 and 2
			// are its WireGuard tables even when WireGuard is off. This is the table-1 incident in the brief.
			{Range{1, 250}, "Felix's RouteTableRanges default; 1 and 2 are its WireGuard tables even with WireGuard off"},
		},
		Priorities:     []Claim{{Range{99, 99}, "WireGuard rule (wireguardRoutingRulePriority)"}},
		Marks:          []Mark{{0, 0xffff0000, "IptablesMarkMask/NftablesMarkMask: accept, pass, drop, scratch, WireGuard and endpoint bits"}},
		FlushesForeign: true,
		MoveClaim:      "move Felix's range with FelixConfiguration routeTableRanges (FELIX_ROUTETABLERANGES)",
		Sources: []string{
			"projectcalico/calico felix/config/config_params.go L175-187, 421, 483-486; felix/dataplane/driver.go L95-200",
			"projectcalico/calico felix/routerule/route_rule.go L94-110, 250-280; felix/wireguard/wireguard.go L226-272",
			"projectcalico/calico#5432, #4837",
		},
	},
	{
		Name:     "cilium",
		RunsPods: true,
		Tables: []Claim{
			// ENI/AlibabaCloud use 10 + interface number and garbage-collect prio-111 rules into tables 10-252;
			// Azure uses the ifindex, which is small on most nodes. Covering 10-252 covers both.
			{Range{10, 252}, "ENI/AlibabaCloud per-interface tables (10 + interface number), Azure tables (ifindex), IPsec 200, WireGuard 201 (legacy), VTEP 202"},
			{Range{300, 1299}, "legacy egress gateway tables 300 + ifindex (cleaned at start-up until v1.15; derived upper bound)"},
			{Range{2004, 2005}, "L7 proxy tables (to-proxy, from-proxy)"},
		},
		Priorities: []Claim{
			{Range{1, 1}, "IPsec"},
			{Range{8, 10}, "legacy egress gateway (8), to-proxy (9), from-proxy (10)"},
			{Range{20, 20}, "ENI/Azure to <pod> lookup main"},
			{Range{100, 100}, "local table rule moved from 0"},
			{Range{109, 112}, "ENI NodePort (109), egress (110, 111), VTEP (112)"},
		},
		Marks: []Mark{
			{0, 0xffff00ff, "security identity"},
			{0, 0x0f00, "magic nibble (proxy, IPsec, overlay)"},
			{0x80, 0x80, "ENI NodePort"},
			{0x1000, 0x1000, "WireGuard (0x1e00 with the magic nibble), 0x1d00"},
			{0x4000, 0x4000, "honours kube-proxy's masquerade bit"},
			{0x8000, 0x8000, "honours kube-proxy's drop bit"},
		},
		FlushesForeign: true,
		Sources: []string{
			"cilium/cilium pkg/datapath/linux/linux_defaults/linux_defaults.go, mark.go",
			"cilium/cilium pkg/datapath/linux/routing/routing.go (computeTableIDFromIfaceNumber, GCOrphanRules)",
			"cilium/cilium#38531, #18706, #24288, #36104",
		},
	},
	{
		Name:     "aws-vpc-cni",
		RunsPods: true,
		Tables: []Claim{
			// device_number + 1 for secondary ENIs (at most 100), vlanID + 100 for Security Groups for Pods.
			{Range{2, 200}, "secondary ENI tables (device + 1) and SGP VLAN tables (vlanID + 100)"},
			// 10000 + device + 100 x network card since v1.20.3, aligned with amazon-ec2-net-utils; derived bound of
			// 16 network cards.
			{Range{10000, 11599}, "multi-card ENI tables 10000 + device + 100 x card"},
		},
		Priorities: []Claim{
			{Range{1, 1}, "multi-homed pod iif rule"},
			{Range{10, 10}, "SGP VLAN iif rules"},
			{Range{20, 20}, "local rule moved from 0 in SGP strict mode"},
			{Range{512, 512}, "to <pod> lookup main"},
			{Range{1024, 1024}, "fwmark 0x80/0x80 lookup main"},
			{Range{1535, 1536}, "AWS_EXTERNAL_SERVICE_CIDRS (1535), from <pod> lookup <eni table> (1536)"},
			{Range{32765, 32765}, "from <ENI primary IP> lookup <eni table>"},
		},
		Marks:          []Mark{{0x80, 0x80, "AWS_VPC_K8S_CNI_CONNMARK"}},
		FlushesForeign: true,
		Sources: []string{
			"aws/amazon-vpc-cni-k8s pkg/networkutils/network.go L53-125, 306-380, 1060-1150",
			"aws/amazon-vpc-cni-k8s cmd/routed-eni-cni-plugin/driver/driver.go L340-390, 540-660",
		},
	},
	{
		Name:     "kube-router",
		RunsPods: true,
		Tables: []Claim{
			// kube-router deletes every route in table 79 when DSR is set up.
			{Range{77, 79}, "kube-router (77), kube-router-dsr (78), external_ip (79)"},
		},
		Priorities:     []Claim{{Range{32764, 32765}, "DSR fwmark rule (32764), external_ip rule (32765)"}},
		Marks:          []Mark{{0, 0x3fff, "DSR/IPVS service marks"}, {0x10000, 0x10000, "network policy"}, {0x20000, 0x20000, "network policy"}},
		FlushesForeign: true,
		Sources:        []string{"cloudnativelabs/kube-router pkg/routes/pbr.go L18-23; pkg/controllers/proxy/linux_networking.go L505-712"},
	},
	{
		Name:     "antrea",
		RunsPods: true,
		Tables: []Claim{
			{Range{101, 120}, "Egress IPs from separate subnets"},
			{Range{141, 141}, "Egress reply routing in hybrid mode"},
		},
		Marks:          []Mark{{0, 0xff, "SNAT IP id"}, {0x80000000, 0x80000000, "host-local source"}, {0x40000000, 0x40000000, "egress no-encap return"}},
		FlushesForeign: true,
		Sources:        []string{"antrea-io/antrea pkg/agent/types/net.go L18-48; pkg/agent/route/route_linux.go"},
	},
	{
		Name:     "flannel",
		RunsPods: true,
		Marks:    []Mark{{0x4000, 0x4000, "reads kube-proxy's masquerade mark"}},
		Sources:  []string{"flannel-io/flannel pkg/trafficmngr/trafficmngr.go L36"},
	},
	{
		Name:     "weave-net",
		RunsPods: true,
		Marks:    []Mark{{0x20000, 0x20000, "encryption"}, {0x40000, 0x40000, "weave-npc egress"}},
		Sources:  []string{"weaveworks/weave net/ipsec/ipsec.go L29; npc/constants.go L5"},
	},
	{
		Name:    "kube-proxy",
		Marks:   []Mark{{0x4000, 0x4000, "KUBE-MARK-MASQ"}, {0x8000, 0x8000, "legacy KUBE-MARK-DROP"}},
		Sources: []string{"kubernetes/kubernetes pkg/proxy/apis/config/v1alpha1/defaults.go"},
	},
	{Name: "metallb", Sources: []string{"metallb/metallb (no rule, route or fwmark programming in source)"}},
	{Name: "multus", Sources: []string{"k8snetworkplumbingwg/multus-cni; containernetworking/plugins plugins/meta/sbr (pod namespace only)"}},
	{
		Name: "wg-quick",
		// Table=auto takes the first table >= 51820 with no routes; 500 above it is a derived bound.
		Tables:         []Claim{{Range{51820, 52319}, "Table=auto: first empty table from 51820"}},
		Marks:          []Mark{{51820, 0xffffffff, "FwMark = table (0xCA6C)"}},
		FlushesForeign: true,
		MoveClaim:      "set Table= and FwMark= in the wg-quick configuration",
		Sources:        []string{"WireGuard/wireguard-tools src/wg-quick/linux.bash L100-115, 182-230"},
	},
	{
		Name:   "tailscale",
		Tables: []Claim{{Range{52, 52}, "tailscale routes"}},
		Priorities: []Claim{
			// tailscaled watches 5200-5299 and re-adds its rules when deleted.
			{Range{1300, 1399}, "rule band on OpenWrt with mwan3"},
			{Range{5200, 5299}, "rule band (5210, 5230, 5250, 5270)"},
		},
		Marks:   []Mark{{0, 0xff0000, "bypass 0x80000, subnet-route 0x40000"}},
		Sources: []string{"tailscale/tailscale wgengine/router/osrouter/router_linux.go L96-190; tsconst/linuxfw.go L20-43"},
	},
	{
		Name:       "networkmanager",
		Tables:     []Claim{{Range{51820, 52319}, "WireGuard auto-default-route tables"}},
		Priorities: []Claim{{Range{30768, 31767}, "WireGuard auto-default-route rule pairs"}},
		Marks:      []Mark{{51820, 0xffffffff, "WireGuard auto fwmark = table"}},
		MoveClaim:  "set wireguard.fwmark on the connection",
		Sources:    []string{"NetworkManager/NetworkManager src/core/devices/nm-device-wireguard.c L250-300, 395-460"},
	},
	{
		Name:    "docker",
		Marks:   []Mark{{0xd0c4e3, 0xffffffff, "overlay encryption"}},
		Sources: []string{"moby/moby daemon/libnetwork/drivers/overlay/encryption.go L51-69"},
	},
	{
		Name: "istio",
		// Only the host-side rules of branch-ENI pods (1.31+); its tables live in pod namespaces.
		Priorities: []Claim{{Range{9, 9}, "iif <veth> lookup local (AWS branch ENI)"}, {Range{512, 512}, "to <pod> lookup <vlan table> (AWS branch ENI)"}},
		Sources:    []string{"istio/istio cni/pkg/nodeagent/brancheni_linux.go L190-215"},
	},
	{Name: "linkerd", Sources: []string{"linkerd/linkerd2-proxy-init (no marks or rules)"}},
	{
		Name:       "amazon-ec2-net-utils",
		Tables:     []Claim{{Range{10000, 11599}, "per-ENI tables 10000 + 100 x card + device"}},
		Priorities: []Claim{{Range{10000, 11599}, "From=<ip> rules at the table's number"}},
		Sources:    []string{"amazonlinux/amazon-ec2-net-utils lib/lib.sh L33, 296-356, 368-416"},
	},
	{
		Name:       "gke-netd",
		Tables:     []Claim{{Range{1, 1}, "default via the eth0 gateway"}},
		Priorities: []Claim{{Range{30000, 30002}, "hairpin mark, iif lo, not iif eth0 rules"}},
		Marks:      []Mark{{0x4000, 0x4000, "hairpin mark"}},
		Sources:    []string{"GoogleCloudPlatform/netd pkg/config/config_policy_routing.go"},
	},
	{
		Name: "suse-cloud-netconfig",
		// 30000 + ifindex and 30400 + ifindex; ifindex below 400 is a derived bound.
		Tables:         []Claim{{Range{30001, 30799}, "address tables 30000 + ifindex, gateway tables 30400 + ifindex"}},
		Priorities:     []Claim{{Range{30001, 30399}, "from <addr> (30000 + ifindex), lookup main suppress_prefixlength 0 (30399)"}},
		FlushesForeign: true,
		Sources:        []string{"SUSE-Enceladus/cloud-netconfig common/cloud-netconfig L319-382, 411-412"},
	},
	{
		Name:    "vmware-cloud-network-setup",
		Tables:  []Claim{{Range{10000, 10999}, "per-interface tables 9999 + ifindex"}},
		Sources: []string{"vmware/cloud-network-setup pkg/network/routing_policy_rule.go L13"},
	},
}

// DefaultTables is where symroute allocates tables when the description does not say: above every claim above
// (the highest is suse-cloud-netconfig's 30799 and NetworkManager's 52319) and below 2^31 so tools that hold the
// id in a signed int still read it.
var DefaultTables = Range{1000000, 1009999}

// DefaultPriorities is where symroute allocates rule priorities: clear of every claim above (ec2-net-utils
// ends at 11599, SUSE and GKE start at 30000) and below the main rule at 32766, which symroute's rules must precede.
var DefaultPriorities = Range{20000, 29999}

// Lookup returns the component named name.
func Lookup(name string) (Component, bool) {
	for _, c := range Components {
		if c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}

// Names returns every known component name, sorted.
func Names() []string {
	names := make([]string, 0, len(Components))
	for _, c := range Components {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	return names
}

// Conflict is a claim that a value or range falls into.
type Conflict struct {
	Component *Component
	Claim     Claim
}

// Describe renders the conflict as a sentence fragment naming the component, its range and its use.
func (c Conflict) Describe(what string) string {
	s := fmt.Sprintf("%s claims %s %s (%s)", c.Component.Name, what, c.Claim.Range, c.Claim.Use)
	if c.Component.FlushesForeign {
		s += ", and deletes entries it did not create there"
	}
	return s
}

// TableConflicts returns the claims of comps (and the kernel's) on tables that r overlaps.
func TableConflicts(comps []*Component, r Range) []Conflict {
	return conflicts(comps, r, func(c *Component) []Claim { return c.Tables })
}

// PriorityConflicts returns the claims of comps (and the kernel's) on rule priorities that r overlaps.
func PriorityConflicts(comps []*Component, r Range) []Conflict {
	return conflicts(comps, r, func(c *Component) []Claim { return c.Priorities })
}

func conflicts(comps []*Component, r Range, claims func(*Component) []Claim) []Conflict {
	var out []Conflict
	for _, c := range append([]*Component{&Kernel}, comps...) {
		for _, cl := range claims(c) {
			if cl.Overlaps(r) {
				out = append(out, Conflict{c, cl})
			}
		}
	}
	return out
}

// MarkConflict is a declared component's mark claim that a mask shares bits with.
type MarkConflict struct {
	Component *Component
	Mark      Mark
}

// Describe renders the conflict as a sentence fragment naming the component, its mark and its use.
func (c MarkConflict) Describe() string {
	return fmt.Sprintf("%s uses fwmark %s (%s)", c.Component.Name, FormatMark(c.Mark), c.Mark.Use)
}

// MarkConflicts returns the mark claims of comps that share a bit with mask. A component that sets or compares
// the whole mark (mask 0xffffffff) conflicts with every mask: one more bit set on its packets and its rule, which
// compares all 32 bits, no longer matches them.
func MarkConflicts(comps []*Component, mask uint32) []MarkConflict {
	var out []MarkConflict
	for _, c := range comps {
		for _, m := range c.Marks {
			if m.Mask&mask != 0 {
				out = append(out, MarkConflict{c, m})
			}
		}
	}
	return out
}

// MarkSearch is the order in which symroute looks for free fwmark bits, by the lowest bit of the field: from bit
// 12 up, then below it. Bits 12 and 13 are left alone by the common components (only kube-router's DSR marks, which
// take every bit below 14, and Cilium's bit 12 touch them); below them sit Cilium's and Antrea's nibbles and AWS's
// 0x80, above them kube-proxy's 0x4000 and 0x8000, Calico's 0xffff0000 and Tailscale's 0xff0000.
var MarkSearch = func() []int {
	var order []int
	for b := 12; b < 32; b++ {
		order = append(order, b)
	}
	for b := 11; b >= 0; b-- {
		order = append(order, b)
	}
	return order
}()

// AlwaysAvoidMarks are the components whose marks the default mark field avoids whether or not the description
// declares them: kube-proxy's 0x4000 and 0x8000 (kubelet's KUBE-FIREWALL drops 0x8000 in INPUT) and Calico's
// 0xffff0000 are on most Kubernetes nodes, and a description written before the node ran them must not collide.
var AlwaysAvoidMarks = []string{"kube-proxy", "calico"}

// FreeMarkMask returns the first field of width contiguous bits, in MarkSearch order, that no claim of comps
// touches; ok is false when there is none.
func FreeMarkMask(comps []*Component, width int) (mask uint32, ok bool) {
	if width < 1 || width > 32 {
		return 0, false
	}
	field := uint32(1)<<width - 1
	if width == 32 {
		field = 0xffffffff
	}
	for _, low := range MarkSearch {
		if low+width > 32 {
			continue
		}
		if m := field << low; len(MarkConflicts(comps, m)) == 0 {
			return m, true
		}
	}
	return 0, false
}

// FormatMark renders a mark as value/mask in hex, or /mask alone when the whole field is claimed.
func FormatMark(m Mark) string {
	if m.Value == 0 {
		return fmt.Sprintf("mask 0x%x", m.Mask)
	}
	return fmt.Sprintf("0x%x/0x%x", m.Value, m.Mask)
}

// Summary lists a component's claims on one line, for `symroute check` and `symroute reservations`.
func (c Component) Summary() string {
	var parts []string
	join := func(label string, cl []Claim) {
		if len(cl) == 0 {
			return
		}
		var rs []string
		for _, x := range cl {
			rs = append(rs, x.Range.String())
		}
		parts = append(parts, label+" "+strings.Join(rs, ", "))
	}
	join("tables", c.Tables)
	join("priorities", c.Priorities)
	if len(c.Marks) > 0 {
		var ms []string
		for _, m := range c.Marks {
			ms = append(ms, FormatMark(m))
		}
		parts = append(parts, "fwmarks "+strings.Join(ms, ", "))
	}
	if len(parts) == 0 {
		return "no host tables, priorities or fwmarks"
	}
	return strings.Join(parts, "; ")
}
