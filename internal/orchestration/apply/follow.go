package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strings"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/edges/systemd"
	"github.com/symroute/symroute/internal/orchestration/state"
)

// The follower (symroute-follow-addresses.service) keeps a "from <address>" rule for each address a dynamic
// interface has. apply does what it does, once, so that a run verifies without waiting for the unit, and so that
// a root without systemd (a test's, an image's) gets the rules too; on the running system it also restarts the
// unit when its files changed, and stops it when no interface is dynamic any more.

// takeUpFollower brings the follower's rules and unit from prior's slots to what target wants.
func (e *Engine) takeUpFollower(ctx context.Context, p *plan.Plan, prior []record.FollowSlot, changed bool, target *record.State) error {
	target.Follow = p.FollowSlots()
	return e.follow(ctx, prior, target.Follow, changed)
}

// undoFollower puts the follower back as it was before tx, after the files are restored.
func (e *Engine) undoFollower(ctx context.Context, tx *record.Transaction) error {
	return e.follow(ctx, tx.Target.Follow, tx.FollowBefore, !slices.Equal(tx.FollowBefore, tx.Target.Follow))
}

// followBefore are the follower's slots now: the record's, or, for files that generate or Ignition wrote, those
// the unit on disk names.
func (e *Engine) followBefore() []record.FollowSlot {
	if e.rec.Applied != nil && len(e.rec.Applied.Follow) > 0 {
		return e.rec.Applied.Follow
	}
	unit, err := fs.ReadFile(e.opts.Root.ReadFS(), ownership.FollowUnitPath)
	if err != nil || !ownership.IsOwned(ownership.FollowUnitPath, unit) {
		return nil
	}
	return generator.FollowSlotsOf(unit)
}

// follow moves the follower from the slots from to the slots to: the unit first (so the running follower, with
// its old arguments, does not put back what is deleted here), then the rules.
func (e *Engine) follow(ctx context.Context, from, to []record.FollowSlot, changed bool) error {
	if len(from) == 0 && len(to) == 0 {
		return nil
	}
	if e.onRunningSystem() && e.deps.Unit != nil {
		switch {
		case len(to) > 0 && changed:
			if err := e.deps.Unit(ctx, ownership.FollowUnit, "restart"); err != nil {
				e.logf("note: %s was not restarted (%v); apply put the rules in place, and the unit starts at the next boot", ownership.FollowUnit, err)
			}
		case len(to) == 0:
			err := e.deps.Unit(ctx, ownership.FollowUnit, "stop")
			switch {
			case errors.Is(err, systemd.ErrNoManager):
				e.logf("note: no systemd manager answers, so %s is not running here", ownership.FollowUnit)
			case err != nil:
				// A follower still running would add back every rule deleted below.
				return fmt.Errorf("stop %s: %w", ownership.FollowUnit, err)
			}
		}
	}
	// A slot goes when no slot kept has its place (priority and table): an interface renamed in place keeps it.
	var gone []record.FollowSlot
	for _, s := range from {
		if !slices.ContainsFunc(to, func(t record.FollowSlot) bool { return t.Priority == s.Priority && t.Table == s.Table }) {
			gone = append(gone, s)
		}
	}
	return e.syncFollower(to, gone)
}

// syncFollower makes the follower's rules at each slot of keep one per global address the slot's interface has
// now, and deletes every follower rule at the slots of drop.
func (e *Engine) syncFollower(keep, drop []record.FollowSlot) error {
	if len(keep) == 0 && len(drop) == 0 {
		return nil // no dump of the rules on every look of a verification that has no follower
	}
	rules, err := e.deps.Kernel.Rules()
	if err != nil {
		return err
	}
	for _, s := range append(slices.Clone(keep), drop...) {
		var want []netip.Addr
		if slices.Contains(keep, s) {
			if want, err = state.FollowedAddresses(e.deps.Kernel, s.Interface); err != nil {
				return err
			}
		}
		var have []netip.Addr
		for _, r := range rules {
			if !ownership.FollowerRule(s, r) {
				continue
			}
			have = append(have, r.From.Addr())
			if slices.Contains(want, r.From.Addr()) {
				continue
			}
			if err := e.deps.Kernel.DeleteRule(r); err != nil {
				return err
			}
			e.logf("deleted the follower's rule %d: from %s lookup %s, for an address %s does not have", s.Priority, r.From.Addr(), routing.TableName(s.Table), s.Interface)
		}
		for _, a := range want {
			if slices.Contains(have, a) {
				continue
			}
			if err := e.deps.Kernel.AddRule(FollowerRuleFor(s, a)); err != nil {
				return err
			}
			e.logf("added rule %d: from %s lookup %s, for %s's address %s", s.Priority, a, routing.TableName(s.Table), s.Interface, a)
		}
	}
	return nil
}

// FollowerRuleFor is the rule the follower keeps at s for address a.
func FollowerRuleFor(s record.FollowSlot, a netip.Addr) routing.Rule {
	family := routing.FamilyV4
	if a.Is6() {
		family = routing.FamilyV6
	}
	return routing.Rule{Family: family, Priority: s.Priority, From: netip.PrefixFrom(a, a.BitLen()), Table: s.Table,
		Protocol: ownership.FollowProtocol, Action: routing.ActionLookup}
}

// guardDefaultRoute refuses, unless forced, to make an interface dynamic while main's only default routes leave
// through it: they are its lease's or advertisements' (a cloud image's primary NIC), and once networkd puts that
// interface's routes into its own table, main keeps no way out and the host is cut off.
func (e *Engine) guardDefaultRoute(p *plan.Plan) error {
	var was []record.FollowSlot
	if e.rec.Applied != nil {
		was = e.rec.Applied.Follow
	}
	moving := map[int]plan.Interface{}
	for _, ifc := range p.Interfaces {
		if !ifc.Dynamic() || slices.ContainsFunc(was, func(s record.FollowSlot) bool { return s.Interface == ifc.Name }) {
			continue
		}
		if index, ok, err := e.deps.Kernel.LinkIndex(ifc.Name); err != nil {
			return err
		} else if ok {
			moving[index] = ifc
		}
	}
	// The families whose default routes through ifc go: a lease's or advertisements' go into its table, and an
	// own file, static in the other family, takes the other's away too.
	moves := func(ifc plan.Interface, v6 bool) bool {
		if ifc.Mode == description.ModeOwn {
			return true
		}
		return v6 && ifc.AcceptRA || !v6 && ifc.DHCP4
	}
	if len(moving) == 0 {
		return nil
	}
	routes, err := e.deps.Kernel.Routes(plan.MainTable)
	if err != nil {
		return err
	}
	for _, v6 := range []bool{false, true} {
		var through []string
		others := false
		for _, r := range routes {
			if r.Destination.IsValid() && r.Destination.Bits() > 0 || (r.Family == routing.FamilyV6) != v6 || r.Blocked {
				continue
			}
			// A way out that stays: a route with a nexthop on a link that does not move.
			for _, l := range r.Links() {
				if ifc, ok := moving[l]; ok && moves(ifc, v6) {
					through = append(through, ifc.Name)
				} else {
					others = true
				}
			}
		}
		if len(through) == 0 || others {
			continue
		}
		family := map[bool]string{false: "IPv4", true: "IPv6"}[v6]
		msg := fmt.Sprintf("main's only %s default route leaves through %s, which the change makes dynamic: networkd would move its lease's or advertisements' routes into the interface's own table, and the host would have no %s default route left",
			family, strings.Join(slices.Compact(slices.Sorted(slices.Values(through))), ", "), family)
		if e.opts.Force {
			e.logf("going ahead: %s", msg)
			continue
		}
		return fmt.Errorf("%w: %s; nothing was changed. Leave the interface that carries main's default route out of the description, give another interface default_route: true, or use --force", ErrRefused, msg)
	}
	return nil
}

// leasedAddresses adds to l the addresses the links in l.Leases have now: they came from a lease or
// advertisements that the change stops taking, and networkd removes them with it.
func (e *Engine) leasedAddresses(l *Lost) error {
	for _, name := range l.Leases {
		addrs, err := state.FollowedAddresses(e.deps.Kernel, name)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			p := netip.PrefixFrom(a, a.BitLen())
			if !slices.ContainsFunc(l.Addresses[name], func(q netip.Prefix) bool { return q.Addr() == a }) {
				l.Addresses[name] = append(l.Addresses[name], p)
			}
		}
	}
	return nil
}
