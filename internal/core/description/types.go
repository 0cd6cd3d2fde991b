// Package description reads and validates the host description: YAML in, a typed Host out, plus a report of every
// problem with its path and line. It does no I/O.
package description

import (
	"net"
	"net/netip"

	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/core/reservations"
)

// SupportedVersion is the only description version this symroute reads.
const SupportedVersion = 1

// RPFilter is a reverse-path filter mode, stored as the sysctl value.
type RPFilter int

const (
	RPFilterOff    RPFilter = 0
	RPFilterStrict RPFilter = 1
	// RPFilterLoose is the default: RFC 3704's setting for multi-homed hosts, which passes a packet whenever any
	// route leads back to its source.
	RPFilterLoose RPFilter = 2
)

var rpFilterNames = map[string]RPFilter{"off": RPFilterOff, "strict": RPFilterStrict, "loose": RPFilterLoose}

// EffectiveRPFilter is the mode the kernel applies on a link: the larger of net.ipv4.conf.all's and the link's
// own, with off < strict < loose (the sysctls' numbers, 0 < 1 < 2).
func EffectiveRPFilter(all, link int) RPFilter { return RPFilter(max(all, link)) }

func (r RPFilter) String() string {
	for name, v := range rpFilterNames {
		if v == r {
			return name
		}
	}
	return "unknown"
}

// Mode says who owns the interface's .network file.
type Mode string

const (
	// ModeOwn: symroute writes the interface's whole .network file.
	ModeOwn Mode = "own"
	// ModeDropIn: another file configures the link; symroute adds its routing sections as a drop-in to it.
	ModeDropIn Mode = "drop-in"
)

// Host is a validated host description.
type Host struct {
	Version      int
	Components   []*reservations.Component
	ClusterCIDRs []netip.Prefix
	Tables       reservations.Range
	Priorities   reservations.Range
	// RPFilterAll, when set, is written to net.ipv4.conf.all.rp_filter.
	RPFilterAll *RPFilter
	// MarkMask pins the fwmark bits track_connections uses; nil means allocate them clear of the components'.
	MarkMask   *uint32
	Interfaces []Interface

	// positions maps a path's string form to where it stands in the YAML, for problems found after parsing.
	positions map[string]report.Pos
}

// Interface is one managed network interface.
type Interface struct {
	Name         string
	PermanentMAC net.HardwareAddr
	Mode         Mode
	Addresses    []netip.Prefix
	Gateway      netip.Addr
	Gateway6     netip.Addr
	DefaultRoute bool
	// Table and Priority are pinned values; nil means allocate.
	Table    *uint32
	Priority *uint32
	RPFilter RPFilter
	// TrackConnections: every connection that arrives on the interface is answered through it, whatever its
	// address, by marking the connection in conntrack and routing its replies by that mark.
	TrackConnections bool
	// DHCP4 and AcceptRA: the interface's addresses and gateways come from a DHCPv4 lease or router
	// advertisements. Their routes go into the interface's table, its connections are tracked, and a follower
	// unit keeps a "from" rule for each address it has at the moment.
	DHCP4, AcceptRA bool
	// AddressesFromNode: the description leaves the addresses out, and they are the node's (Options.FromNode);
	// Addresses holds them when one node's were given.
	AddressesFromNode bool
}

// Dynamic reports whether the interface takes addresses from DHCPv4 or router advertisements.
func (i Interface) Dynamic() bool { return i.DHCP4 || i.AcceptRA }

// Pos returns where path stands in the description, or the nearest enclosing node that has a position.
func (h *Host) Pos(path report.Path) report.Pos {
	for p := path; ; p = p[:len(p)-1] {
		if pos, ok := h.positions[p.String()]; ok {
			return pos
		}
		if len(p) == 0 {
			return report.Pos{}
		}
	}
}
