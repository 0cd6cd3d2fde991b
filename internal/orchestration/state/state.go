// Package state gathers the live state drift compares with the plan: rules and owned tables over netlink, the
// kernel's answers to the symmetry probes, effective rp_filter from /proc/sys (through Sysctl), and which .network file networkd
// applied to each link over D-Bus. It only reads.
package state

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/ifname"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/edges/networkd"
)

// Kernel is what state reads from the kernel; *kernel.Reader implements it.
type Kernel interface {
	Rules() ([]routing.Rule, error)
	Routes(table uint32) ([]routing.Route, error)
	LinkIndex(name string) (int, bool, error)
	LinkName(index int) (string, error)
	RouteGet(src, dst netip.Addr, mark uint32) (routing.Answer, error)
	Addresses(index int) ([]routing.Address, error)
}

// Networkd is what state asks networkd; *networkd.Client implements it.
type Networkd interface {
	DescribeLink(ctx context.Context, ifindex int) (networkd.Link, error)
	DescribeLinks(ctx context.Context) ([]networkd.Link, error)
}

// Sysctl reads a kernel parameter by its sysctl.d key; sysctl.Applier implements it.
type Sysctl interface {
	Read(key string) (value string, exists bool, err error)
}

// Connmark reads the nftables table of track_connections; *nftables.Ruleset implements it.
type Connmark interface {
	Hash() (hash string, ok bool, err error)
}

// Sources are where the state is read from.
type Sources struct {
	Kernel Kernel
	// Networkd may be nil, or fail: the network-file check is then skipped with a note.
	Networkd Networkd
	Sysctl   Sysctl
	// Connmark may be nil where nothing tracks connections; the table is then not read.
	Connmark Connmark
}

// Gather reads the snapshot for p; expect names the links whose networkd state to read (every interface, and lo
// when it carries the cluster rules). An error means the state could not be read at all.
func Gather(ctx context.Context, p *plan.Plan, expect drift.Expect, src Sources) (drift.Snapshot, error) {
	snap := drift.Snapshot{Routes: map[uint32][]routing.Route{}, Links: map[string]int{}, RPFilter: map[string]int{}}
	var err error
	if snap.Rules, err = src.Kernel.Rules(); err != nil {
		return snap, err
	}
	for _, ifc := range p.Interfaces {
		if _, done := snap.Routes[ifc.Table]; !done {
			if snap.Routes[ifc.Table], err = src.Kernel.Routes(ifc.Table); err != nil {
				return snap, err
			}
		}
		index, ok, err := src.Kernel.LinkIndex(ifc.Name)
		if err != nil {
			return snap, err
		}
		if ok {
			snap.Links[ifc.Name] = index
		}
	}

	for _, ifc := range p.Interfaces {
		if !ifc.Dynamic() {
			continue
		}
		if snap.Followed == nil {
			snap.Followed = map[string][]netip.Addr{}
		}
		if snap.Followed[ifc.Name], err = FollowedAddresses(src.Kernel, ifc.Name); err != nil {
			return snap, err
		}
	}

	for _, ifc := range p.Interfaces {
		if !ifc.Dynamic() {
			continue
		}
		if snap.LeaseGateways == nil {
			snap.LeaseGateways = map[string][2]bool{}
		}
		var gw [2]bool
		for _, r := range snap.Routes[ifc.Table] {
			if !r.Destination.IsValid() && r.Gateway.IsValid() && r.LinkIndex == snap.Links[ifc.Name] {
				gw[map[bool]int{false: 0, true: 1}[r.Gateway.Is6()]] = true
			}
		}
		snap.LeaseGateways[ifc.Name] = gw
	}
	for _, pr := range drift.Probes(p, snap.Followed, snap.LeaseGateways) {
		if _, linked := snap.Links[p.Interfaces[pr.Position].Name]; !linked {
			continue
		}
		res := drift.ProbeResult{Probe: pr}
		if res.Answer, err = src.Kernel.RouteGet(pr.Src, pr.Dst, pr.Mark); err != nil {
			res.Err = err.Error()
		} else if _, known := snap.LinkName(res.Answer.LinkIndex); !known {
			if name, err := src.Kernel.LinkName(res.Answer.LinkIndex); err == nil {
				snap.Links[name] = res.Answer.LinkIndex
			}
		}
		snap.Probes = append(snap.Probes, res)
	}

	if v, err := readInt(src.Sysctl, "net.ipv4.conf.all.rp_filter"); err == nil {
		snap.RPFilter["all"] = v
	} else {
		snap.Notes = append(snap.Notes, fmt.Sprintf("rp_filter not checked: %v", err))
	}
	for _, ifc := range p.Interfaces {
		if _, linked := snap.Links[ifc.Name]; !linked {
			continue
		}
		if v, err := readInt(src.Sysctl, ifname.SysctlKey(ifc.Name, "rp_filter")); err == nil {
			snap.RPFilter[ifc.Name] = v
		}
	}
	if len(p.Tracked()) > 0 {
		snap.SrcValidMark = map[string]int{}
		if v, err := readInt(src.Sysctl, "net.ipv4.conf.all.src_valid_mark"); err == nil {
			snap.SrcValidMark["all"] = v
		}
		for _, ifc := range p.Tracked() {
			if _, linked := snap.Links[ifc.Name]; !linked {
				continue
			}
			if v, err := readInt(src.Sysctl, ifname.SysctlKey(ifc.Name, "src_valid_mark")); err == nil {
				snap.SrcValidMark[ifc.Name] = v
			}
		}
	}

	if src.Connmark != nil && (len(p.Tracked()) > 0 || expect.Recorded != nil && expect.Recorded.Connmark != "") {
		hash, ok, err := src.Connmark.Hash()
		if err != nil && len(p.Tracked()) > 0 {
			// Without the table's state nothing says whether tracked replies find their way: not a pass.
			return snap, err
		}
		if err != nil {
			snap.Notes = append(snap.Notes, fmt.Sprintf("nftables table inet symroute was not checked: %v", err))
		} else {
			snap.Connmark = &drift.Connmark{Present: ok, Hash: hash, Kernel: KernelRelease()}
		}
	}

	if src.Networkd != nil {
		files, states, err := describe(ctx, src, expect, snap.Links)
		if err != nil {
			snap.Notes = append(snap.Notes, fmt.Sprintf("which .network file networkd applied was not checked: %v", err))
		} else {
			snap.NetworkFiles, snap.LinkStates = files, states
		}
	} else {
		snap.Notes = append(snap.Notes, "which .network file networkd applied was not checked: no system bus")
	}
	return snap, nil
}

// FollowedAddresses are the global addresses the link named name has now, as the follower reads them (`ip
// address show scope global`, without those duplicate address detection failed): none when the link does not
// exist.
func FollowedAddresses(k Kernel, name string) ([]netip.Addr, error) {
	index, ok, err := k.LinkIndex(name)
	if err != nil || !ok {
		return nil, err
	}
	addrs, err := k.Addresses(index)
	if err != nil {
		return nil, fmt.Errorf("read %s's addresses: %w", name, err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a.Scope == 0 && !a.DADFailed && a.Prefix.IsValid() {
			out = append(out, a.Prefix.Addr())
		}
	}
	return out, nil
}

// describe reads, for every link expect names, the .network file networkd applied and its state: in one call
// where networkd has Manager.Describe, link by link otherwise.
func describe(ctx context.Context, src Sources, expect drift.Expect, known map[string]int) (files, states map[string]string, err error) {
	files, states = map[string]string{}, map[string]string{}
	if all, err := src.Networkd.DescribeLinks(ctx); err == nil {
		byName := map[string]networkd.Link{}
		for _, l := range all {
			byName[l.Name] = l
		}
		for name := range expect.NetworkFiles {
			if l, ok := byName[name]; ok {
				files[name], states[name] = l.NetworkFile, l.AdministrativeState
			}
		}
		return files, states, nil
	}
	for _, name := range sortedKeys(expect.NetworkFiles) {
		index, linked := known[name]
		if !linked {
			i, ok, err := src.Kernel.LinkIndex(name)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				continue
			}
			index = i
		}
		l, err := src.Networkd.DescribeLink(ctx, index)
		if err != nil {
			return nil, nil, err
		}
		files[name], states[name] = l.NetworkFile, l.AdministrativeState
	}
	return files, states, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func readInt(s Sysctl, key string) (int, error) {
	v, exists, err := s.Read(key)
	if err != nil {
		return 0, err
	}
	if !exists {
		return 0, fmt.Errorf("%s does not exist", key)
	}
	return strconv.Atoi(v)
}

// Verify gathers the live state and compares it with p.
func Verify(ctx context.Context, p *plan.Plan, expect drift.Expect, src Sources) (drift.Result, error) {
	snap, err := Gather(ctx, p, expect, src)
	if err != nil {
		return drift.Result{}, err
	}
	return drift.Compare(p, snap, expect), nil
}

// KernelRelease is the running kernel's release, as uname -r gives it.
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
