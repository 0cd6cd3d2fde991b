package description

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/internal/core/ifname"
	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/core/reservations"
)

// MaxSize is the largest description symroute reads. A host with a few hundred interfaces and addresses
// takes a few kilobytes; the cap bounds the time and memory a careless or hostile file can cost.
const MaxSize = 1 << 20

// Parse reads a host description. The Host is usable only when the report has no errors; the report holds every
// problem found, each with its path and position. Time and memory are linear in len(data): the size is capped,
// and YAML aliases, which would let a small file stand for a large one, are counted and bounded.
func Parse(data []byte) (*Host, report.Report) { return ParseWith(data, Options{}) }

// Options say where an interface that lists no addresses (and takes none from DHCP or advertisements) gets them.
type Options struct {
	// FromNode lets it leave them out: it takes the addresses its link has on each node, as discover reads
	// them, so that one description serves a pool of nodes (a Kubernetes policy). Node holds one node's, by
	// link name; nil checks the description for every node at once, where what depends on the addresses (a
	// gateway inside their subnets) is checked on each node.
	FromNode bool
	Node     map[string][]netip.Prefix
}

// ParseWith reads a host description as Parse does, with o saying where omitted addresses come from.
func ParseWith(data []byte, o Options) (*Host, report.Report) {
	var r report.Report
	if len(data) > MaxSize {
		r.Add(report.Error, nil, report.Pos{Line: 1, Column: 1}, "the description is %d bytes; symroute reads at most %d (1 MiB). A description lists a host's interfaces and is a few kilobytes; check that -c names the right file", len(data), MaxSize)
		return nil, r
	}
	if pos, msg := badByte(data); msg != "" {
		r.Add(report.Error, nil, pos, "%s; a description is UTF-8 text without control characters other than tab and newline", msg)
		return nil, r
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			r.Add(report.Error, nil, report.Pos{Line: 1, Column: 1}, "the description is empty; start it with \"version: 1\" and list the interfaces")
			return nil, r
		}
		return nil, syntaxError(err, data)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		r.Add(report.Error, nil, posOf(&extra), "the file holds more than one YAML document; keep one description per file")
		return nil, r
	}
	if len(doc.Content) == 0 {
		r.Add(report.Error, nil, report.Pos{Line: 1, Column: 1}, "the description is empty; start it with \"version: 1\" and list the interfaces")
		return nil, r
	}
	root := doc.Content[0]
	if pos, msg := checkAliases(root); msg != "" {
		r.Add(report.Error, nil, pos, "%s", msg)
		return nil, r
	}

	d := &decoder{pos: map[string]report.Pos{}, broke: map[string]bool{}, opts: o}
	root = resolve(root)
	h := &Host{
		Tables:     reservations.DefaultTables,
		Priorities: reservations.DefaultPriorities,
		positions:  d.pos,
	}
	d.pos[report.Path(nil).String()] = posOf(root)

	// Read the version before anything else, as butane does: a description for another version should get one
	// clear error, not a cascade of unknown keys. A version that is only written wrong (missing, quoted) is
	// reported, and the rest is checked as this version's.
	if !d.version(root, h) {
		return nil, d.r
	}

	d.mapping(root, nil, []field{
		{"version", func(*yaml.Node, report.Path) {}},
		{"cni", func(n *yaml.Node, p report.Path) { d.components(n, p, h) }},
		{"cluster_cidrs", func(n *yaml.Node, p report.Path) {
			d.sequence(n, p, func(n *yaml.Node, p report.Path) {
				if c, ok := d.clusterCIDR(n, p); ok {
					h.ClusterCIDRs = append(h.ClusterCIDRs, c)
				}
			})
		}},
		{"table_range", func(n *yaml.Node, p report.Path) { h.Tables = d.rangeValue(n, p, h.Tables, 1, maxUint32) }},
		{"priority_range", func(n *yaml.Node, p report.Path) {
			h.Priorities = d.rangeValue(n, p, h.Priorities, 1, MaxPriority)
		}},
		{"rp_filter_all", func(n *yaml.Node, p report.Path) {
			if v, ok := d.rpFilter(n, p); ok {
				h.RPFilterAll = &v
			}
		}},
		{"mark_mask", func(n *yaml.Node, p report.Path) {
			if v, ok := d.uint32Value(n, p, 1, maxUint32); ok {
				h.MarkMask = &v
			}
		}},
		{"interfaces", func(n *yaml.Node, p report.Path) {
			d.sequence(n, p, func(n *yaml.Node, p report.Path) {
				h.Interfaces = append(h.Interfaces, d.iface(n, p))
			})
		}},
	})
	if _, ok := d.pos[report.Path{"interfaces"}.String()]; !ok {
		d.errorf(root, report.Path{"interfaces"}, "is missing; list the host's interfaces, each with a name and its addresses")
	}
	validate(h, d)
	return h, d.r
}

// MaxPriority is the highest rule priority that can work: the kernel's "from all lookup main" rule sits at 32766,
// and a source rule after it never matches a reply main can route.
const MaxPriority = 32765

// badByte finds the first byte YAML cannot hold, or that would make messages unprintable or line numbers wrong:
// invalid UTF-8, control characters other than tab and newline (the YAML library refuses them without saying
// where), and the line breaks YAML knows and editors do not show (a lone carriage return, NEL, U+2028, U+2029). It returns the position and what is wrong, or "" when every byte is fine.
func badByte(data []byte) (report.Pos, string) {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return report.Pos{Line: line, Column: col}, fmt.Sprintf("byte 0x%02x at line %d, column %d is not valid UTF-8", data[i], line, col)
		case r == 0:
			return report.Pos{Line: line, Column: col}, fmt.Sprintf("a NUL byte at line %d, column %d", line, col)
		case r == '\r' && (i+1 >= len(data) || data[i+1] != '\n'):
			return report.Pos{Line: line, Column: col}, fmt.Sprintf("a carriage return without a newline at line %d, column %d (YAML counts it as a line break, most editors do not; save the file with LF or CRLF line ends)", line, col)
		case r == 0x85 || r == 0x2028 || r == 0x2029:
			return report.Pos{Line: line, Column: col}, fmt.Sprintf("the line separator %U at line %d, column %d (YAML counts it as a line break, most editors do not)", r, line, col)
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0x7f, r >= 0x80 && r < 0xa0, r == 0xfffe, r == 0xffff:
			return report.Pos{Line: line, Column: col}, fmt.Sprintf("the control character %U at line %d, column %d", r, line, col)
		case r == '\n':
			line, col = line+1, 0
		}
		i += size
		col++
	}
	return report.Pos{}, ""
}

// Alias limits. An alias (*name) stands for the whole node its anchor names, so a few of them can make a small
// file describe millions of values; a description needs at most a handful.
const (
	maxAliases = 64
	// maxExpansion bounds how many nodes the description may stand for, aliases followed, against the nodes it
	// holds.
	maxExpansion = 2
)

// checkAliases refuses a document whose aliases would cost more than a bounded multiple of its own size to read,
// or that refers to itself (an anchor whose value contains an alias to it, which would never end).
func checkAliases(root *yaml.Node) (report.Pos, string) {
	literal, aliases := 0, 0
	var count func(n *yaml.Node)
	count = func(n *yaml.Node) {
		literal++
		if n.Kind == yaml.AliasNode {
			aliases++
			return
		}
		for _, c := range n.Content {
			count(c)
		}
	}
	count(root)
	if aliases == 0 {
		return report.Pos{}, ""
	}
	if aliases > maxAliases {
		return report.Pos{Line: 1, Column: 1}, fmt.Sprintf("the description uses %d YAML aliases (*name); symroute reads at most %d. Write the values out instead", aliases, maxAliases)
	}
	// expanded counts the nodes a walk would visit, memoised by node so each is measured once (linear time).
	memo := map[*yaml.Node]int{}
	const visiting = -1
	limit := maxExpansion*literal + 1024
	var cycle report.Pos
	var expanded func(n *yaml.Node) (int, string)
	expanded = func(n *yaml.Node) (int, string) {
		if n.Kind == yaml.AliasNode {
			if memo[n.Alias] == visiting {
				cycle = posOf(n)
				return 0, fmt.Sprintf("the alias *%s stands for a value that contains it, which never ends; write the value out instead", report.Printable(n.Value))
			}
			n = n.Alias
		}
		if v, seen := memo[n]; seen {
			return v, ""
		}
		memo[n] = visiting
		total := 1
		for _, c := range n.Content {
			v, msg := expanded(c)
			if msg != "" {
				return 0, msg
			}
			if total += v; total > limit {
				break
			}
		}
		memo[n] = total
		return total, ""
	}
	total, msg := expanded(root)
	if msg != "" {
		return cycle, msg
	}
	if total > limit {
		return report.Pos{Line: 1, Column: 1}, fmt.Sprintf("the description's %d YAML aliases expand its %d nodes to more than %d; symroute reads at most %dx the nodes written. Write the values out instead", aliases, literal, limit, maxExpansion)
	}
	return report.Pos{}, ""
}

func (d *decoder) version(root *yaml.Node, h *Host) bool {
	if root.Kind != yaml.MappingNode {
		d.errorf(root, nil, "the description must be a mapping starting with \"version: 1\", not %s", describe(root))
		return false
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "version" {
			continue
		}
		n := resolve(root.Content[i+1])
		p := report.Path{"version"}
		d.pos[p.String()] = posOf(n)
		v, ok := d.uint32Value(n, p, 0, maxUint32)
		if !ok {
			if q, quoted := quotedNumber(n); quoted && q != SupportedVersion {
				return false // another version, which the rest would only contradict
			}
			h.Version = SupportedVersion
			return true
		}
		if v != SupportedVersion {
			d.errorf(n, p, "version %d is not supported; this symroute reads version %d descriptions (upgrade symroute, or write version: %d)", v, SupportedVersion, SupportedVersion)
			return false
		}
		h.Version = int(v)
		return true
	}
	d.errorf(root, report.Path{"version"}, "is missing; start the description with \"version: %d\"", SupportedVersion)
	h.Version = SupportedVersion
	return true
}

func (d *decoder) components(n *yaml.Node, p report.Path, h *Host) {
	seen := map[string]bool{}
	d.sequence(n, p, func(n *yaml.Node, p report.Path) {
		name, ok := d.scalar(n, p, "a component name")
		if !ok {
			return
		}
		c, ok := reservations.Lookup(strings.ToLower(name))
		if !ok {
			d.errorf(n, p, "unknown component %s%s; symroute knows %s (leave it out if it claims no tables, priorities or marks)",
				report.Quote(name), didYouMean(strings.ToLower(name), reservations.Names()), strings.Join(reservations.Names(), ", "))
			return
		}
		if seen[c.Name] {
			d.errorf(n, p, "%s is listed twice; list each component once", c.Name)
			return
		}
		seen[c.Name] = true
		h.Components = append(h.Components, &c)
	})
}

func (d *decoder) rangeValue(n *yaml.Node, p report.Path, def reservations.Range, lo, hi uint32) reservations.Range {
	r := def
	minSet, maxSet := false, false
	d.mapping(n, p, []field{
		{"min", func(n *yaml.Node, p report.Path) { r.Min, minSet = d.uint32Value(n, p, lo, hi) }},
		{"max", func(n *yaml.Node, p report.Path) { r.Max, maxSet = d.uint32Value(n, p, lo, hi) }},
	})
	if !minSet || !maxSet {
		_, hasMin := d.pos[p.Key("min").String()]
		_, hasMax := d.pos[p.Key("max").String()]
		if n.Kind == yaml.MappingNode && (!hasMin || !hasMax) {
			d.errorf(n, p, "needs both min and max, for example {min: %d, max: %d}", def.Min, def.Max)
		}
		return def
	}
	if r.Min > r.Max {
		d.errorf(n, p, "min %d is above max %d; swap them", r.Min, r.Max)
		return def
	}
	return r
}

// rpFilter reads strict, loose or off; off also in the other spellings YAML 1.1 reads as false (no, false),
// since a YAML 1.1 reader turns off itself into false.
func (d *decoder) rpFilter(n *yaml.Node, p report.Path) (RPFilter, bool) {
	s, ok := d.scalar(n, p, "strict, loose or off")
	if !ok {
		return 0, false
	}
	if slices.Contains(FalseWords, s) {
		return RPFilterOff, true
	}
	v, ok := rpFilterNames[s]
	switch {
	case ok:
	case slices.Contains(TrueWords, s):
		d.errorf(n, p, "%s turns rp_filter on, and it has two ways on: write strict or loose", report.Quote(s))
	case s == "0" || s == "1" || s == "2":
		d.errorf(n, p, "must be strict, loose or off, not the sysctl's number %s: write %s", s, RPFilter(s[0]-'0'))
	default:
		d.errorf(n, p, "must be strict, loose or off, not %s%s", report.Quote(s), didYouMean(s, []string{"strict", "loose", "off"}))
	}
	return v, ok
}

func (d *decoder) iface(n *yaml.Node, p report.Path) Interface {
	i := Interface{Mode: ModeOwn, RPFilter: RPFilterLoose}
	d.mapping(n, p, []field{
		{"name", func(n *yaml.Node, p report.Path) {
			if s, ok := d.scalar(n, p, "an interface name"); ok {
				if msg := ifname.Check(s); msg != "" {
					d.errorf(n, p, "%s cannot be an interface name: %s. A name is %s", report.Quote(s), msg, ifname.Rule)
					return
				}
				i.Name = s
			}
		}},
		{"match", func(n *yaml.Node, p report.Path) {
			d.mapping(n, p, []field{{"permanent_mac", func(n *yaml.Node, p report.Path) {
				if s, ok := d.scalar(n, p, "a MAC address"); ok {
					mac, err := net.ParseMAC(s)
					if err != nil || len(mac) != 6 {
						d.errorf(n, p, "%s is not an Ethernet MAC address; write six hex pairs like 52:54:00:12:34:56", report.Quote(s))
						return
					}
					if mac[0]&1 == 1 || bytes.Equal(mac, make(net.HardwareAddr, 6)) {
						d.errorf(n, p, "%s cannot be a link's permanent address: it is a multicast or all-zero MAC. Copy the link's permanent address from ethtool -P", report.Quote(s))
						return
					}
					i.PermanentMAC = mac
				}
			}}})
		}},
		{"mode", func(n *yaml.Node, p report.Path) {
			if s, ok := d.scalar(n, p, "own or drop-in"); ok {
				switch Mode(s) {
				case ModeOwn, ModeDropIn:
					i.Mode = Mode(s)
				default:
					d.errorf(n, p, "must be own (symroute writes the link's .network file) or drop-in (another .network file configures the link), not %s%s",
						report.Quote(s), didYouMean(s, []string{string(ModeOwn), string(ModeDropIn)}))
				}
			}
		}},
		{"addresses", func(n *yaml.Node, p report.Path) {
			d.sequence(n, p, func(n *yaml.Node, p report.Path) {
				if a, ok := d.address(n, p); ok {
					i.Addresses = append(i.Addresses, a)
				}
			})
		}},
		{"gateway", func(n *yaml.Node, p report.Path) { i.Gateway, _ = d.addr(n, p) }},
		{"gateway6", func(n *yaml.Node, p report.Path) { i.Gateway6, _ = d.addr(n, p) }},
		{"default_route", func(n *yaml.Node, p report.Path) { i.DefaultRoute, _ = d.boolValue(n, p) }},
		{"table", func(n *yaml.Node, p report.Path) {
			if v, ok := d.uint32Value(n, p, 1, maxUint32); ok {
				i.Table = &v
			}
		}},
		{"priority", func(n *yaml.Node, p report.Path) {
			if v, ok := d.uint32Value(n, p, 1, MaxPriority); ok {
				i.Priority = &v
			}
		}},
		{"rp_filter", func(n *yaml.Node, p report.Path) { i.RPFilter, _ = d.rpFilter(n, p) }},
		{"track_connections", func(n *yaml.Node, p report.Path) { i.TrackConnections, _ = d.boolValue(n, p) }},
		{"dhcp4", func(n *yaml.Node, p report.Path) { i.DHCP4, _ = d.boolValue(n, p) }},
		{"accept_ra", func(n *yaml.Node, p report.Path) { i.AcceptRA, _ = d.boolValue(n, p) }},
	})
	if n.Kind == yaml.MappingNode {
		if _, ok := d.pos[p.Key("name").String()]; !ok {
			d.errorf(n, p.Key("name"), "is missing; every interface needs the kernel name of its link, e.g. name: eth0")
		}
		if _, ok := d.pos[p.Key("addresses").String()]; !ok && !i.Dynamic() {
			switch {
			case !d.opts.FromNode:
				d.errorf(n, p.Key("addresses"), "is missing; list the interface's addresses with prefix length, e.g. [192.168.1.10/24], or set dhcp4: true or accept_ra: true when they come from DHCP or router advertisements")
			case d.opts.Node == nil:
				i.AddressesFromNode = true
			case len(d.opts.Node[i.Name]) == 0 && i.Name != "":
				d.errorf(n, p, "%s takes its addresses from the node, and this node's %s has no global address; give the link one, or list addresses for it", i.Name, i.Name)
			default:
				i.AddressesFromNode, i.Addresses = true, slices.Clone(d.opts.Node[i.Name])
			}
		}
		// An address that changes can only be answered by connection: tracking is what makes it work.
		if i.Dynamic() {
			if at, set := d.pos[p.Key("track_connections").String()]; set && !i.TrackConnections && !d.broken(p.Key("track_connections")) {
				d.errorAt(p.Key("track_connections"), at, "cannot be false with dhcp4 or accept_ra: requests to an address that a lease or an advertisement hands out are answered by their connection's mark; remove track_connections: false")
			}
			i.TrackConnections = true
		}
	}
	return i
}

// address parses an interface address: an IP with its prefix length, as `ip addr` shows it.
func (d *decoder) address(n *yaml.Node, p report.Path) (netip.Prefix, bool) {
	s, ok := d.scalar(n, p, "an address with prefix length, like 192.168.1.10/24")
	if !ok {
		return netip.Prefix{}, false
	}
	if !strings.Contains(s, "/") {
		if a, err := netip.ParseAddr(s); err == nil {
			d.errorf(n, p, "%s has no prefix length; write the address as the interface carries it, e.g. %s/%d", report.Quote(s), a, typicalBits(a))
		} else {
			d.errorf(n, p, "%s is not an IP address with prefix length, like 192.168.1.10/24", report.Quote(s))
		}
		return netip.Prefix{}, false
	}
	a, err := netip.ParsePrefix(s)
	if err != nil {
		d.errorf(n, p, "%s is not an IP address with prefix length: %s", report.Quote(s), unwrapParse(err))
		return netip.Prefix{}, false
	}
	if a.Addr().Zone() != "" || a.Addr().Is4In6() {
		d.errorf(n, p, "%s: write IPv4 addresses as a.b.c.d and IPv6 addresses without a zone", report.Quote(s))
		return netip.Prefix{}, false
	}
	if a.Addr().IsUnspecified() || a.Addr().IsMulticast() || a.Addr().IsLoopback() {
		d.errorf(n, p, "%s cannot be an interface's address; give the unicast address the interface carries", report.Quote(s))
		return netip.Prefix{}, false
	}
	if a.Addr().Is4() && a.Bits() <= 30 && a.Addr() == broadcast(a) || a.Addr() == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		d.errorf(n, p, "%s is the broadcast address of its subnet: packets to it go to every host on the link, so it cannot answer as one. Give the interface's unicast address", report.Quote(s))
		return netip.Prefix{}, false
	}
	if a.Bits() == 0 {
		d.errorf(n, p, "%s claims the whole address space as the interface's subnet: its table would get two default routes and networkd would refuse one. Give the subnet's real length, e.g. %s/%d",
			report.Quote(s), a.Addr(), typicalBits(a.Addr()))
		return netip.Prefix{}, false
	}
	return a, true
}

// broadcast returns the last address of an IPv4 subnet.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// typicalBits is the prefix length shown in examples: a /24 for IPv4, a /64 for IPv6.
func typicalBits(a netip.Addr) int {
	if a.Is6() {
		return 64
	}
	return 24
}

// clusterCIDR parses a pod or service range; host bits must be zero.
func (d *decoder) clusterCIDR(n *yaml.Node, p report.Path) (netip.Prefix, bool) {
	s, ok := d.scalar(n, p, "a CIDR like 10.244.0.0/16")
	if !ok {
		return netip.Prefix{}, false
	}
	c, err := netip.ParsePrefix(s)
	if err != nil {
		d.errorf(n, p, "%s is not a CIDR: %s", report.Quote(s), unwrapParse(err))
		return netip.Prefix{}, false
	}
	if c.Addr().Is4In6() {
		d.errorf(n, p, "%s is an IPv4 range written as IPv6 (::ffff:a.b.c.d); the kernel never matches IPv4 packets against it, so write it as %s",
			report.Quote(s), netip.PrefixFrom(c.Addr().Unmap(), max(c.Bits()-96, 0)).Masked())
		return netip.Prefix{}, false
	}
	if c != c.Masked() {
		d.errorf(n, p, "%s has host bits set; did you mean %s?", report.Quote(s), c.Masked())
		return netip.Prefix{}, false
	}
	if c.Bits() == 0 {
		d.errorf(n, p, "%s covers every destination: \"to %s lookup main\" ahead of every source rule turns policy routing off. List only the pod and service ranges", report.Quote(s), c)
		return netip.Prefix{}, false
	}
	return c, true
}

func (d *decoder) addr(n *yaml.Node, p report.Path) (netip.Addr, bool) {
	s, ok := d.scalar(n, p, "an IP address")
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		d.errorf(n, p, "%s is not an IP address: %s", report.Quote(s), unwrapParse(err))
		return netip.Addr{}, false
	}
	if a.Zone() != "" {
		d.errorf(n, p, "%s: leave out the zone; the gateway is on this interface", report.Quote(s))
		return netip.Addr{}, false
	}
	return a, true
}

// unwrapParse keeps the reason of a net/netip parse error and drops its copy of the input, which the message
// already shows shortened: `ParseAddr("1.2.3.4x"): unexpected character (at "x")` becomes "unexpected
// character".
func unwrapParse(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "): "); i >= 0 {
		msg = msg[i+3:]
	}
	if i := strings.Index(msg, " (at "); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, ": "); i >= 0 && strings.Contains(msg[i:], "\"") {
		msg = msg[:i]
	}
	return report.Printable(msg)
}
