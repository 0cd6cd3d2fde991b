package spec

import (
	"bytes"
	"net"
	"net/netip"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/symroute/symroute/internal/report"
	"github.com/symroute/symroute/internal/reservations"
)

// Parse reads a host description. The Host is usable only when the report has no errors; the report holds every
// problem found, each with its path and position.
func Parse(data []byte) (*Host, report.Report) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			var r report.Report
			r.Add(report.Error, nil, report.Pos{Line: 1, Column: 1}, "the description is empty; start it with \"version: 1\" and list the interfaces")
			return nil, r
		}
		return nil, syntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		var r report.Report
		r.Add(report.Error, nil, posOf(&extra), "the file holds more than one YAML document; keep one description per file")
		return nil, r
	}

	d := &decoder{pos: map[string]report.Pos{}}
	root := resolve(doc.Content[0])
	h := &Host{
		Tables:     reservations.DefaultTables,
		Priorities: reservations.DefaultPriorities,
		positions:  d.pos,
	}
	d.pos[report.Path(nil).String()] = posOf(root)

	// Read the version before anything else, as butane does: a description for another version should get one
	// clear error, not a cascade of unknown keys.
	if !d.version(root, h) {
		return nil, d.r
	}

	d.mapping(root, nil, []field{
		{"version", func(*yaml.Node, report.Path) {}},
		{"cni", func(n *yaml.Node, p report.Path) { d.components(n, p, h) }},
		{"cluster_cidrs", func(n *yaml.Node, p report.Path) {
			d.sequence(n, p, func(n *yaml.Node, p report.Path) {
				if c, ok := d.prefix(n, p); ok {
					h.ClusterCIDRs = append(h.ClusterCIDRs, c)
				}
			})
		}},
		{"table_range", func(n *yaml.Node, p report.Path) { h.Tables = d.rangeValue(n, p, h.Tables, 1) }},
		{"priority_range", func(n *yaml.Node, p report.Path) { h.Priorities = d.rangeValue(n, p, h.Priorities, 1) }},
		{"rp_filter_all", func(n *yaml.Node, p report.Path) {
			if v, ok := d.rpFilter(n, p); ok {
				h.RPFilterAll = &v
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
			return false
		}
		if v != SupportedVersion {
			d.errorf(n, p, "version %d is not supported; this symroute reads version %d descriptions (upgrade symroute, or write version: %d)", v, SupportedVersion, SupportedVersion)
			return false
		}
		h.Version = int(v)
		return true
	}
	d.errorf(root, report.Path{"version"}, "is missing; start the description with \"version: %d\"", SupportedVersion)
	return false
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
			d.errorf(n, p, "unknown component %q; symroute knows %s (leave it out if it claims no tables, priorities or marks)", name, strings.Join(reservations.Names(), ", "))
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

func (d *decoder) rangeValue(n *yaml.Node, p report.Path, def reservations.Range, lo uint32) reservations.Range {
	r := def
	minSet, maxSet := false, false
	d.mapping(n, p, []field{
		{"min", func(n *yaml.Node, p report.Path) { r.Min, minSet = d.uint32Value(n, p, lo, maxUint32) }},
		{"max", func(n *yaml.Node, p report.Path) { r.Max, maxSet = d.uint32Value(n, p, lo, maxUint32) }},
	})
	if !minSet || !maxSet {
		if n.Kind == yaml.MappingNode {
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

func (d *decoder) rpFilter(n *yaml.Node, p report.Path) (RPFilter, bool) {
	s, ok := d.scalar(n, p, "strict, loose or off")
	if !ok {
		return 0, false
	}
	v, ok := rpFilterNames[s]
	if !ok {
		d.errorf(n, p, "must be strict, loose or off, not %q", s)
	}
	return v, ok
}

func (d *decoder) iface(n *yaml.Node, p report.Path) Interface {
	i := Interface{Mode: ModeOwn, RPFilter: RPFilterLoose}
	d.mapping(n, p, []field{
		{"name", func(n *yaml.Node, p report.Path) {
			if s, ok := d.scalar(n, p, "an interface name"); ok {
				if msg := checkIfname(s); msg != "" {
					d.errorf(n, p, "%q is not a name Linux accepts: %s", s, msg)
				}
				i.Name = s
			}
		}},
		{"match", func(n *yaml.Node, p report.Path) {
			d.mapping(n, p, []field{{"permanent_mac", func(n *yaml.Node, p report.Path) {
				if s, ok := d.scalar(n, p, "a MAC address"); ok {
					mac, err := net.ParseMAC(s)
					if err != nil || len(mac) != 6 {
						d.errorf(n, p, "%q is not an Ethernet MAC address; write six hex pairs like 52:54:00:12:34:56", s)
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
					d.errorf(n, p, "must be own (symroute writes the link's .network file) or drop-in (another .network file configures the link), not %q", s)
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
			if v, ok := d.uint32Value(n, p, 1, 32765); ok {
				i.Priority = &v
			}
		}},
		{"rp_filter", func(n *yaml.Node, p report.Path) { i.RPFilter, _ = d.rpFilter(n, p) }},
	})
	if n.Kind == yaml.MappingNode {
		if _, ok := d.pos[p.Key("name").String()]; !ok {
			d.errorf(n, p.Key("name"), "is missing; every interface needs the kernel name of its link, e.g. name: eth0")
		}
		if _, ok := d.pos[p.Key("addresses").String()]; !ok {
			d.errorf(n, p.Key("addresses"), "is missing; list the interface's addresses with prefix length, e.g. [192.168.1.10/24]")
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
		d.errorf(n, p, "%q has no prefix length; write the address as the interface carries it, e.g. %s/24", s, s)
		return netip.Prefix{}, false
	}
	a, err := netip.ParsePrefix(s)
	if err != nil {
		d.errorf(n, p, "%q is not an IP address with prefix length: %v", s, unwrapParse(err))
		return netip.Prefix{}, false
	}
	if a.Addr().Zone() != "" || a.Addr().Is4In6() {
		d.errorf(n, p, "%q: write IPv4 addresses as a.b.c.d and IPv6 addresses without a zone", s)
		return netip.Prefix{}, false
	}
	if a.Addr().IsUnspecified() || a.Addr().IsMulticast() || a.Addr().IsLoopback() {
		d.errorf(n, p, "%q cannot be an interface's address; give the unicast address the interface carries", s)
		return netip.Prefix{}, false
	}
	return a, true
}

// prefix parses a network prefix such as a pod CIDR; host bits must be zero.
func (d *decoder) prefix(n *yaml.Node, p report.Path) (netip.Prefix, bool) {
	s, ok := d.scalar(n, p, "a CIDR like 10.244.0.0/16")
	if !ok {
		return netip.Prefix{}, false
	}
	c, err := netip.ParsePrefix(s)
	if err != nil {
		d.errorf(n, p, "%q is not a CIDR: %v", s, unwrapParse(err))
		return netip.Prefix{}, false
	}
	if c != c.Masked() {
		d.errorf(n, p, "%q has host bits set; did you mean %s?", s, c.Masked())
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
		d.errorf(n, p, "%q is not an IP address: %v", s, unwrapParse(err))
		return netip.Addr{}, false
	}
	if a.Zone() != "" {
		d.errorf(n, p, "%q: leave out the zone; the gateway is on this interface", s)
		return netip.Addr{}, false
	}
	return a, true
}

// unwrapParse drops netip's quoting of the input, which the message already shows.
func unwrapParse(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// checkIfname applies the kernel's dev_valid_name: at most 15 bytes (IFNAMSIZ less the NUL), not "." or "..",
// and no '/', ':' or whitespace. It returns what is wrong, or "".
func checkIfname(s string) string {
	switch {
	case len(s) > 15:
		return "it is longer than 15 bytes"
	case s == "." || s == "..":
		return "\".\" and \"..\" are reserved"
	case strings.ContainsAny(s, "/:"):
		return "it contains '/' or ':'"
	case strings.ContainsAny(s, " \t\n\v\f\r"):
		return "it contains whitespace"
	}
	return ""
}
