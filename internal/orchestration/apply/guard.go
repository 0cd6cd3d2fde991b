package apply

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/filesync"
)

// Lost is what a change removes, read from symroute's own files before and after it: the addresses of each link
// (networkd removes an address that leaves a link's file, live connections and all), and the rules and routes.
type Lost struct {
	Addresses map[string][]netip.Prefix
	Rules     []record.Rule
	Routes    []generator.RouteEffect
	// Rerouted are the addresses that lose every rule selecting them as a source: replies from them leave by the
	// main table afterwards, out of another interface, and a stateful peer drops the connections they carry.
	Rerouted []netip.Addr
	// Leases are the links whose own file runs DHCP or accepts advertisements before and not after: the
	// addresses those give go with it, whatever they are now (leasedAddresses reads them).
	Leases []string
}

// Addrs lists the addresses, each once.
func (l Lost) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, ps := range l.Addresses {
		for _, p := range ps {
			if !slices.Contains(out, p.Addr()) {
				out = append(out, p.Addr())
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// Lines renders what is lost, one item a line.
func (l Lost) Lines() []string {
	var out []string
	links := make([]string, 0, len(l.Addresses))
	for name := range l.Addresses {
		links = append(links, name)
	}
	sort.Strings(links)
	for _, name := range links {
		for _, p := range l.Addresses[name] {
			out = append(out, fmt.Sprintf("address %s from %s", p, name))
		}
	}
	for _, r := range l.Rules {
		out = append(out, "rule "+r.String())
	}
	for _, r := range l.Routes {
		out = append(out, "route "+r.String())
	}
	for _, a := range l.Rerouted {
		out = append(out, fmt.Sprintf("the source rule of %s: its replies leave by the main table", a))
	}
	return out
}

// lost compares the effects of symroute's networkd files before and after changes. Rules and routes are compared
// over all files together (networkd keeps one kernel rule for identical sections in several files); addresses
// link by link, since an address moved to another link is removed from the first.
func lost(changes []filesync.Change, files []fileset.File) Lost {
	changed := map[string]bool{}
	var before, after generator.Effects
	oldAddrs, newAddrs := map[string][]netip.Prefix{}, map[string][]netip.Prefix{}
	oldDynamic, newDynamic := map[string]bool{}, map[string]bool{}
	add := func(into *generator.Effects, addrs map[string][]netip.Prefix, dynamic map[string]bool, p string, data []byte) {
		if !isNetworkdFile(p) || data == nil {
			return
		}
		e := generator.ReadEffects(data)
		into.Rules = append(into.Rules, e.Rules...)
		into.Routes = append(into.Routes, e.Routes...)
		if name, ok := ownership.LinkOf(p, data); ok {
			addrs[name] = append(addrs[name], e.Addresses...)
			dynamic[name] = dynamic[name] || e.Dynamic
		}
	}
	for _, c := range changes {
		changed[c.Path] = true
		add(&before, oldAddrs, oldDynamic, c.Path, c.Old)
		add(&after, newAddrs, newDynamic, c.Path, c.New)
	}
	for _, f := range files {
		if !changed[f.Path] { // unchanged: the same before and after
			add(&before, oldAddrs, oldDynamic, f.Path, f.Data)
			add(&after, newAddrs, newDynamic, f.Path, f.Data)
		}
	}
	l := generator.Lost(before, after)
	out := Lost{Addresses: map[string][]netip.Prefix{}, Rules: dedup(l.Rules), Routes: dedup(l.Routes)}
	for name, addrs := range oldAddrs {
		for _, a := range addrs {
			if !slices.Contains(newAddrs[name], a) {
				out.Addresses[name] = append(out.Addresses[name], a)
			}
		}
	}
	for name := range oldDynamic {
		if oldDynamic[name] && !newDynamic[name] {
			out.Leases = append(out.Leases, name)
		}
	}
	slices.Sort(out.Leases)
	gone := out.Addrs()
	sources := func(rules []record.Rule) []netip.Addr {
		var s []netip.Addr
		for _, r := range rules {
			if r.From.IsValid() && r.From.IsSingleIP() {
				s = append(s, r.From.Addr())
			}
		}
		return s
	}
	stillRouted := sources(after.Rules)
	for _, a := range sources(out.Rules) {
		if !slices.Contains(stillRouted, a) && !slices.Contains(gone, a) && !slices.Contains(out.Rerouted, a) {
			out.Rerouted = append(out.Rerouted, a)
		}
	}
	slices.SortFunc(out.Rerouted, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

func isNetworkdFile(p string) bool {
	return strings.HasSuffix(p, ".network") || strings.HasSuffix(p, ".conf") && strings.HasPrefix(p, ownership.NetworkDir+"/")
}

func dedup[T comparable](s []T) []T {
	var out []T
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// guard refuses a change that removes an address an established TCP connection uses, or the source rule its
// replies follow, unless forced: the operator's own SSH session is the connection most often cut. Nothing has
// changed when it refuses.
func (e *Engine) guard(l Lost, out *Outcome) error {
	addrs := append(l.Addrs(), l.Rerouted...)
	if len(addrs) == 0 || e.deps.Connections == nil {
		return nil
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	conns, err := e.deps.Connections(addrs)
	if err != nil {
		if e.opts.Force {
			e.logf("note: could not list the connections on the addresses the change affects: %v", err)
			return nil
		}
		return fmt.Errorf("%w: the change removes %s, and the connections using them could not be listed (%v); nothing was changed. Use symroute try, or --force", ErrRefused, what(l, addrs), err)
	}
	out.Connections = conns
	if len(conns) == 0 {
		return nil
	}
	for _, c := range conns {
		if slices.Contains(l.Rerouted, c.Local.Addr()) {
			e.logf("connection %s uses %s, whose replies the change moves to the main table", c, c.Local.Addr())
		} else {
			e.logf("connection %s uses %s, which the change removes", c, c.Local.Addr())
		}
	}
	if e.opts.Force {
		e.logf("going ahead: those connections will break")
		return nil
	}
	return fmt.Errorf("%w: the change removes %s, which %d established connection(s) use; nothing was changed. Run symroute try to apply it and roll back unless you confirm from a working session, or use --force to cut them", ErrRefused, what(l, addrs), len(conns))
}

// what names what the guard protects: addresses, and the source rules of others.
func what(l Lost, addrs []netip.Addr) string {
	var gone, rerouted []netip.Addr
	for _, a := range addrs {
		if slices.Contains(l.Rerouted, a) {
			rerouted = append(rerouted, a)
		} else {
			gone = append(gone, a)
		}
	}
	switch {
	case len(rerouted) == 0:
		return joinAddrs(gone)
	case len(gone) == 0:
		return "the source rules of " + joinAddrs(rerouted)
	}
	return joinAddrs(gone) + " and the source rules of " + joinAddrs(rerouted)
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
