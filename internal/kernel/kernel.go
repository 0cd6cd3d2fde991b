// Package kernel reads the routing state symroute cares about from the kernel over netlink: rules, and the
// routes of given tables. It never writes.
package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Rule is a routing-policy rule as the kernel holds it.
type Rule struct {
	Family   int
	Priority uint32
	From, To netip.Prefix
	Table    uint32
	Protocol uint8
}

// Route is a route as the kernel holds it; Destination is invalid for a default route.
type Route struct {
	Family      int
	Destination netip.Prefix
	Gateway     netip.Addr
	Table       uint32
	LinkIndex   int
}

// Reader reads from one network namespace's netlink handle.
type Reader struct {
	h *netlink.Handle
}

// NewReader reads through h; a nil handle reads the caller's own namespace.
func NewReader(h *netlink.Handle) *Reader {
	if h == nil {
		h = &netlink.Handle{}
	}
	return &Reader{h: h}
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
func (r *Reader) Rules() ([]Rule, error) {
	var out []Rule
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := retry(func() ([]netlink.Rule, error) { return r.h.RuleList(fam) })
		if err != nil {
			return nil, fmt.Errorf("list rules: %w", err)
		}
		for _, nr := range rules {
			out = append(out, Rule{
				Family:   fam,
				Priority: uint32(nr.Priority),
				From:     prefix(nr.Src),
				To:       prefix(nr.Dst),
				Table:    uint32(nr.Table),
				Protocol: nr.Protocol,
			})
		}
	}
	return out, nil
}

// Routes returns the IPv4 and IPv6 routes of table. The kernel filters by table, so the cost follows the
// table's size, not main's.
func (r *Reader) Routes(table uint32) ([]Route, error) {
	var out []Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		filter := &netlink.Route{Table: int(table)}
		routes, err := retry(func() ([]netlink.Route, error) {
			return r.h.RouteListFiltered(fam, filter, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return nil, fmt.Errorf("list routes of table %d: %w", table, err)
		}
		for _, nr := range routes {
			if fam == netlink.FAMILY_V6 && nr.Type != unix.RTN_UNICAST {
				continue // the kernel's local and multicast bookkeeping
			}
			rt := Route{Family: fam, Destination: prefix(nr.Dst), Table: uint32(nr.Table), LinkIndex: nr.LinkIndex}
			if a, ok := netip.AddrFromSlice(nr.Gw); ok {
				rt.Gateway = a.Unmap()
			}
			if rt.Destination.IsValid() && rt.Destination.Bits() == 0 {
				rt.Destination = netip.Prefix{}
			}
			out = append(out, rt)
		}
	}
	return out, nil
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
