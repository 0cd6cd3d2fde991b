package apply

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/filesync"
)

// Removal is what a remove left in place.
type Removal struct {
	// Kept are symroute's own .network files it kept, released, because they give their links addresses; by
	// link name.
	Kept map[string][]netip.Prefix
	// Remaining lists what could not be taken away, such as routes left in a table.
	Remaining []string
}

// Remove undoes what symroute has in place: it deletes every file of symroute's (by the record, and by name and
// header for files generate or Ignition wrote), restores each sysctl key symroute set to its value from before
// symroute, and deletes the rules the record says symroute made that networkd leaves behind. A link whose
// addresses come from symroute's own .network file keeps them unless force: the file stays, stripped of the
// routing, and Removal says what remains. The same transaction as apply: recorded first, undone on failure.
func (e *Engine) Remove(ctx context.Context, all bool) (Outcome, Removal, error) {
	var out Outcome
	rm := Removal{Kept: map[string][]netip.Prefix{}}
	if e.rec.Pending != nil {
		return out, rm, errors.New("a transaction is pending; recover it first")
	}
	changes, err := filesync.Compute(e.opts.Root, nil, ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs)
	if err != nil {
		return out, rm, err
	}
	target := record.State{Addresses: map[string][]netip.Prefix{}}
	if !all {
		for i, c := range changes {
			link, own := ownership.OwnNetworkLink(c.Path)
			if !own {
				continue
			}
			effects := generator.ReadEffects(c.Old)
			addrs := effects.Addresses
			if len(addrs) == 0 && !effects.Dynamic {
				continue
			}
			released := generator.Released(c.Old, link)
			changes[i] = filesync.Change{Kind: filesync.Update, Path: c.Path, Old: c.Old, New: released, Mode: c.OldMode, OldMode: c.OldMode}
			target.Files = append(target.Files, record.File{Path: c.Path, SHA256: record.Hash(released), Mode: uint32(c.OldMode.Perm())})
			target.Addresses[link] = addrs
			rm.Kept[link] = addrs
		}
	}
	out.Changes = changes
	out.Lost = lost(changes, nil)
	if err := e.leasedAddresses(&out.Lost); err != nil {
		return out, rm, err
	}
	for _, line := range out.Lost.Lines() {
		e.logf("will remove %s", line)
	}
	if err := e.guard(out.Lost, &out); err != nil {
		return out, rm, err
	}
	ps, confFirst := phasesOf(changes)
	restart := slices.ContainsFunc(ps, func(ph phase) bool { return ph.restart })
	if err := e.checkNetworkd(ctx, false, restart); err != nil {
		return out, rm, err
	}

	var prior record.State
	if e.rec.Applied != nil {
		prior = *e.rec.Applied
	}
	restore, sysUndo, err := e.restores(prior.Sysctls, func(string) bool { return false })
	if err != nil {
		return out, rm, err
	}
	if len(prior.Sysctls) == 0 && e.rec.Applied == nil && touches(changes, ownership.SysctlPath) {
		e.logf("note: no record of the rp_filter values before symroute; they stay as they are")
	}
	leftover, err := e.recordedRulesNotIn(prior.Rules, nil, nil)
	if err != nil {
		return out, rm, err
	}
	tableBefore, err := e.connmarkNow()
	if err != nil {
		return out, rm, err
	}
	// A table symroute has no record of loading, and no file of its describes, is left alone, by the removal and
	// by its undo (which compares with tableBefore, the table as it is).
	deleteTable := tableBefore != "" && (prior.Connmark != "" || touches(changes, ownership.ConnmarkRulesetPath))
	followed := e.followBefore()
	if len(changes) == 0 && len(restore) == 0 && len(leftover) == 0 && !deleteTable && len(followed) == 0 {
		e.logf("nothing of symroute's is in place")
		e.rec.Applied = nil
		return out, rm, e.save()
	}

	target.Transaction = newID()
	tx := &record.Transaction{
		ID: target.Transaction, Op: record.OpRemove, Process: e.deps.Self, Started: time.Now().UTC(),
		Undo: undo(changes), SysctlUndo: sysUndo, Restart: restart, ConfFirst: confFirst, Target: target,
		ConnmarkBefore: tableBefore, FollowBefore: followed,
	}
	if err := e.recordBefore(tx); err != nil {
		return out, rm, err
	}
	e.rec.Pending = tx
	if err := e.save(); err != nil {
		e.rec.Pending = nil
		return out, rm, err
	}
	var done []phase
	fail := func(cause error) (Outcome, Removal, error) {
		if errors.Is(ctx.Err(), context.Canceled) {
			out.Interrupted = true
			cause = errors.New("interrupted")
		}
		if err := e.rollback(ctx, tx, done, true, &out); err != nil {
			return out, rm, errors.Join(cause, err)
		}
		return out, rm, cause
	}
	// A link whose own file is deleted is no longer networkd's to configure: wait only for the others.
	var managed []string
	for name := range changedLinks(changes) {
		if _, gone := out.Lost.Addresses[name]; !gone {
			managed = append(managed, name)
		}
	}
	if err := e.runPhases(ctx, tx, ps, managed, &out, &done); err != nil {
		return fail(err)
	}
	for _, s := range restore {
		if err := e.deps.Sysctl.Write(s.Key, s.Value); err != nil {
			return fail(fmt.Errorf("restore %s: %w", s.Key, err))
		}
		e.logf("set %s back to %s", s.Key, s.Value)
	}
	// Listed again: networkd has removed most of them itself by now.
	if err := e.deleteRules(leftover); err != nil {
		return fail(err)
	}
	if deleteTable {
		if err := e.deps.Connmark.Delete(); err != nil {
			return fail(fmt.Errorf("delete nftables table inet %s: %w", ownership.NFTTable, err))
		}
		e.logf("deleted nftables table inet %s", ownership.NFTTable)
	}
	if err := e.follow(ctx, followed, nil, false); err != nil {
		return fail(err)
	}
	rm.Remaining, err = e.remaining(prior)
	if err != nil {
		return fail(err)
	}
	if len(target.Files) > 0 {
		e.rec.Applied = &target
	} else {
		e.rec.Applied = nil
	}
	e.rec.Pending = nil
	return out, rm, e.save()
}

// remaining lists what of prior is still in the kernel once the removal is done: its rules, and routes in its
// tables.
func (e *Engine) remaining(prior record.State) ([]string, error) {
	var out []string
	rules, err := e.deps.Kernel.Rules()
	if err != nil {
		return nil, err
	}
	for _, kr := range rules {
		if ownership.OwnsRule(&prior, kr) {
			out = append(out, "rule "+ownership.RuleOf(kr).String())
		}
	}
	for _, t := range prior.Tables {
		routes, err := e.deps.Kernel.Routes(t)
		if err != nil {
			return nil, err
		}
		if len(routes) > 0 {
			out = append(out, fmt.Sprintf("%d route(s) in table %d", len(routes), t))
		}
	}
	return out, nil
}

// RemoveFiles is remove for a root whose networkd does not run (an image build, a chroot): it takes away
// symroute's files as Remove does, keeping each own .network file released unless force, and updates the
// record; it touches no kernel, no networkd and no sysctl, and says so.
func (e *Engine) RemoveFiles(force bool) (Removal, error) {
	rm := Removal{Kept: map[string][]netip.Prefix{}}
	if err := e.RecoverFiles(); err != nil {
		return rm, err
	}
	changes, err := filesync.Compute(e.opts.Root, nil, ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs)
	if err != nil {
		return rm, err
	}
	target := record.State{Addresses: map[string][]netip.Prefix{}}
	for i, c := range changes {
		link, own := ownership.OwnNetworkLink(c.Path)
		if force || !own {
			continue
		}
		if addrs := generator.ReadEffects(c.Old).Addresses; len(addrs) > 0 {
			released := generator.Released(c.Old, link)
			changes[i] = filesync.Change{Kind: filesync.Update, Path: c.Path, Old: c.Old, New: released, Mode: c.OldMode, OldMode: c.OldMode}
			target.Files = append(target.Files, record.File{Path: c.Path, SHA256: record.Hash(released), Mode: uint32(c.OldMode.Perm())})
			target.Addresses[link] = addrs
			rm.Kept[link] = addrs
		}
	}
	if err := filesync.Apply(e.opts.Root, changes); err != nil {
		return rm, err
	}
	for _, c := range changes {
		e.logf("%s /%s", c.Kind, c.Path)
	}
	e.logf("offline: no kernel state, networkd or sysctl was touched; networkd takes the files up when it next starts")
	e.rec.Applied, e.rec.Pending = nil, nil
	if len(target.Files) > 0 {
		e.rec.Applied = &target
	}
	return rm, e.save()
}
