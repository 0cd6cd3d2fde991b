package state

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/ifname"
	"github.com/symroute/symroute/internal/core/networkfiles"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/core/status"
	"github.com/symroute/symroute/internal/edges/networkd"
)

// LinkLister lists every link of the namespace, and every address by link in one dump (a host with thousands of
// links is read in one pass, and a link that goes meanwhile is not an error); *kernel.Reader implements it.
type LinkLister interface {
	Links() ([]routing.Link, error)
	AllAddresses() (map[int][]routing.Address, error)
}

// Status gathers what symroute status shows. With a description, p is its plan and res verify's comparison of
// it with the live state; without one both are nil, and every link is read. root is the system's files, where
// the drop-ins of each link's .network file are found when networkd does not list them (252); nil leaves them
// unlisted. It only reads; networkd not answering and rp_filter values that cannot be read are notes, not errors.
func Status(ctx context.Context, p *plan.Plan, res *drift.Result, src Sources, links LinkLister, root fs.FS) (status.Snapshot, error) {
	snap := status.Snapshot{Plan: p, Result: res, Addresses: map[int][]routing.Address{}, Routes: map[uint32][]routing.Route{}, RPFilter: map[string]int{}}
	var err error
	if snap.Links, err = links.Links(); err != nil {
		return snap, err
	}
	all, err := links.AllAddresses()
	if err != nil {
		return snap, err
	}
	for _, l := range snap.Links {
		if !l.Loopback {
			snap.Addresses[l.Index] = all[l.Index]
		}
	}
	if snap.Rules, err = src.Kernel.Rules(); err != nil {
		return snap, err
	}
	for _, t := range snap.TablesWanted() {
		if snap.Routes[t], err = src.Kernel.Routes(t); err != nil {
			return snap, err
		}
	}

	if v, err := readInt(src.Sysctl, "net.ipv4.conf.all.rp_filter"); err == nil {
		snap.RPFilter["all"] = v
	} else {
		snap.Notes = append(snap.Notes, fmt.Sprintf("rp_filter not read: %v", err))
	}
	for _, l := range snap.Links {
		if l.Loopback {
			continue
		}
		if v, err := readInt(src.Sysctl, ifname.SysctlKey(l.Name, "rp_filter")); err == nil {
			snap.RPFilter[l.Name] = v
		}
	}

	if src.Networkd == nil {
		snap.Notes = append(snap.Notes, "networkd's files not read: no system bus")
		return snap, nil
	}
	described, err := describeAll(ctx, src.Networkd, snap.Links)
	if err != nil {
		snap.Notes = append(snap.Notes, fmt.Sprintf("networkd's files not read: %v", err))
		return snap, nil
	}
	snap.Networkd = map[string]status.NetworkdLink{}
	for _, l := range described {
		nl := status.NetworkdLink{State: l.AdministrativeState, NetworkFile: l.NetworkFile, Dropins: l.NetworkFileDropins, DropinsFrom: status.FromNetworkd}
		if nl.Dropins == nil && nl.NetworkFile != "" && root == nil {
			// networkd did not list them, and there are no files to list them from: say neither.
			nl.DropinsFrom = ""
		}
		if nl.Dropins == nil && nl.NetworkFile != "" && root != nil {
			// networkd said nothing of drop-ins (an empty list would be [], not absent): list them as it reads them.
			if nl.Dropins, err = networkfiles.Dropins(root, nl.NetworkFile); err != nil {
				snap.Notes = append(snap.Notes, fmt.Sprintf("the drop-ins of %s not listed: %v", nl.NetworkFile, err))
			}
			nl.DropinsFrom = status.FromFiles
		}
		snap.Networkd[l.Name] = nl
	}
	return snap, nil
}

// describeAll asks networkd about every link: in one call where it has Manager.Describe, link by link otherwise.
func describeAll(ctx context.Context, nd Networkd, links []routing.Link) ([]networkd.Link, error) {
	if all, err := nd.DescribeLinks(ctx); err == nil {
		return all, nil
	}
	var out []networkd.Link
	for _, l := range links {
		d, err := nd.DescribeLink(ctx, l.Index)
		if err != nil {
			return nil, err
		}
		if d.Name == "" {
			d.Name = l.Name
		}
		out = append(out, d)
	}
	return out, nil
}
