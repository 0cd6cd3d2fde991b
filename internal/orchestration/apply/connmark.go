package apply

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/orchestration/state"
)

// Connmark loads, reads and deletes the nftables table of track_connections; *nftables.Ruleset implements it.
// Load runs the same `nft -f` the unit runs at boot, so an apply proves the boot's file.
type Connmark interface {
	state.Connmark
	Available() error
	Load(ctx context.Context, path string) error
	Delete() error
}

// checkConnmark refuses, before anything changes, a run that needs nftables where it cannot work.
func (e *Engine) checkConnmark(p *plan.Plan) error {
	if !e.involvesConnmark(p) {
		return nil
	}
	if e.deps.Connmark == nil {
		return fmt.Errorf("track_connections needs nftables, which this run cannot reach; nothing was changed")
	}
	// Loading needs nft; deleting the table, when tracking stops, only the kernel's netlink.
	if len(p.Tracked()) > 0 {
		if err := e.deps.Connmark.Available(); err != nil {
			return fmt.Errorf("track_connections needs nftables: %w; nothing was changed", err)
		}
	}
	// A table of symroute's name that no record and no file of symroute's accounts for is another program's.
	now, err := e.connmarkNow()
	if err != nil || now == "" || e.rec.Applied != nil && e.rec.Applied.Connmark != "" {
		return err
	}
	if data, err := fs.ReadFile(e.opts.Root.ReadFS(), ownership.ConnmarkRulesetPath); err == nil && ownership.IsOwned(ownership.ConnmarkRulesetPath, data) {
		return nil // loaded at boot from symroute's file (Ignition, generate), or by a run whose record was lost
	}
	return fmt.Errorf("nftables table inet %s exists, and neither symroute's record nor a file of symroute's accounts for it: it is another program's, which symroute will not replace; rename or delete it (nft delete table inet %s). Nothing was changed", ownership.NFTTable, ownership.NFTTable)
}

// connmarkNow is the hash of the table as the kernel holds it, "" when there is none.
func (e *Engine) connmarkNow() (string, error) {
	if e.deps.Connmark == nil {
		return "", nil
	}
	hash, ok, err := e.deps.Connmark.Hash()
	if err != nil {
		return "", fmt.Errorf("read nftables table inet %s: %w", ownership.NFTTable, err)
	}
	if !ok {
		return "", nil
	}
	return hash, nil
}

// involvesConnmark says whether a run with target touches the table: it wants one, or the applied state has one.
func (e *Engine) involvesConnmark(p *plan.Plan) bool {
	return len(p.Tracked()) > 0 || e.rec.Applied != nil && e.rec.Applied.Connmark != ""
}

// takeUpConnmark brings the table to what the plan wants, after the files are written: loaded from the file when
// the file changed or the table is not what the record says, deleted when no interface tracks connections any
// more and symroute had loaded it. The table's hash goes into target.
func (e *Engine) takeUpConnmark(ctx context.Context, p *plan.Plan, fileChanged bool, target *record.State) error {
	if !e.involvesConnmark(p) {
		return nil
	}
	if e.deps.Connmark == nil {
		return fmt.Errorf("track_connections needs nftables, which this run cannot reach")
	}
	now, err := e.connmarkNow()
	if err != nil {
		return err
	}
	if len(p.Tracked()) == 0 {
		if now != "" {
			if err := e.deps.Connmark.Delete(); err != nil {
				return fmt.Errorf("delete nftables table inet %s: %w", ownership.NFTTable, err)
			}
			e.logf("deleted nftables table inet %s: no interface tracks connections", ownership.NFTTable)
		}
		return nil
	}
	kernel := state.KernelRelease()
	recorded := ""
	if a := e.rec.Applied; a != nil && a.ConnmarkKernel == kernel {
		recorded = a.Connmark
	}
	if fileChanged || now == "" || now != recorded {
		if err := e.loadConnmark(ctx); err != nil {
			return err
		}
		if now, err = e.connmarkNow(); err != nil {
			return err
		}
		e.activateUnit(ctx)
	}
	target.Connmark, target.ConnmarkKernel = now, kernel
	return nil
}

func (e *Engine) loadConnmark(ctx context.Context) error {
	file := e.opts.Root.Join(ownership.ConnmarkRulesetPath)
	if err := e.deps.Connmark.Load(ctx, file); err != nil {
		return fmt.Errorf("load %s: %w", file, err)
	}
	e.logf("loaded nftables table inet %s from /%s", ownership.NFTTable, ownership.ConnmarkRulesetPath)
	return nil
}

// undoConnmark puts the table back as it was before tx: the previous file, restored by now, loaded again, or the
// table deleted where there was none.
func (e *Engine) undoConnmark(ctx context.Context, tx *record.Transaction) error {
	if e.deps.Connmark == nil {
		return nil
	}
	now, err := e.connmarkNow()
	if err != nil || now == tx.ConnmarkBefore {
		return err
	}
	if tx.ConnmarkBefore == "" {
		if err := e.deps.Connmark.Delete(); err != nil {
			return fmt.Errorf("delete nftables table inet %s: %w", ownership.NFTTable, err)
		}
		e.logf("deleted nftables table inet %s, which the run loaded", ownership.NFTTable)
		return nil
	}
	if _, err := fs.Stat(e.opts.Root.ReadFS(), ownership.ConnmarkRulesetPath); err != nil {
		e.logf("note: nftables table inet %s was loaded before the run, but /%s is not there to load it again from; the table is left as the run made it", ownership.NFTTable, ownership.ConnmarkRulesetPath)
		return nil
	}
	if err := e.loadConnmark(ctx); err != nil {
		return err
	}
	if now, err = e.connmarkNow(); err != nil {
		return err
	}
	if now != tx.ConnmarkBefore {
		e.logf("note: nftables table inet %s, loaded again from the previous file, differs from the table before the run (which was not loaded from that file)", ownership.NFTTable)
	}
	return nil
}

// activateUnit has systemd run the unit too (it loads the same file again), on the running system only: systemd
// propagates a restart or reload of nftables.service, whose "flush ruleset" drops the table, to an active unit
// alone. A manager that does not answer is only noted; the table is loaded either way.
func (e *Engine) activateUnit(ctx context.Context) {
	if e.deps.RestartConnmark == nil || !e.onRunningSystem() {
		return
	}
	if err := e.deps.RestartConnmark(ctx); err != nil {
		e.logf("note: %s was not started (%v); it loads the table at the next boot", ownership.ConnmarkUnit, err)
	}
}

// guardMarks refuses, unless forced, a change that moves the mark of an interface that tracks connections before
// and after it (an interface removed from the middle of the list, a component that claims the field, another
// mark_mask): connections open now carry the old mark in conntrack, and their replies lose their way back, or
// take another interface's, until they end. symroute try applies such a change with a way back.
func (e *Engine) guardMarks(p *plan.Plan) error {
	if e.rec.Applied == nil {
		return nil
	}
	old := map[string]record.Rule{}
	for _, r := range e.rec.Applied.Rules {
		if r.Iif != "" && r.Mark != 0 {
			old[r.Iif] = r
		}
	}
	var moved []string
	for _, r := range p.KernelRules() {
		if r.Iif == "" || r.Mark == 0 || r.Family == 6 { // one line per interface; both families move together
			continue
		}
		if prev, ok := old[r.Iif]; ok && (prev.Mark != r.Mark || prev.Mask != r.Mask) {
			moved = append(moved, fmt.Sprintf("%s (%#x/%#x to %#x/%#x)", r.Iif, prev.Mark, prev.Mask, r.Mark, r.Mask))
		}
		// A mark another interface had: that interface's open connections would leave by this one.
		for name, prev := range old {
			if name != r.Iif && prev.Mark == r.Mark && prev.Mask == r.Mask {
				moved = append(moved, fmt.Sprintf("%s (its mark %#x/%#x goes to %s)", name, prev.Mark, prev.Mask, r.Iif))
			}
		}
	}
	slices.Sort(moved)
	moved = slices.Compact(moved)
	if len(moved) == 0 {
		return nil
	}
	if e.opts.Force {
		e.logf("going ahead: the marks of %s move; their open connections lose their way back until they end", strings.Join(moved, ", "))
		return nil
	}
	return fmt.Errorf("%w: the change moves the connection marks of %s, so connections open through them lose their way back until they end; nothing was changed. Run symroute try, or use --force; pin interfaces' order (or mark_mask) to keep the marks where they are", ErrRefused, strings.Join(moved, ", "))
}
