package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/edges/filesync"
)

// rollback carries out tx's inverse in a context of its own (an interrupted run still rolls back, within the
// timeout): the phases done undone in reverse order, each file with its previous bytes and mode, each with the
// same kind of take-up (a restart undoes a restart); then the previous value of every key, and the deletion of
// rules the run made that networkd keeps, never one that was there before the run. known says done lists what
// the run did; a later run undoing a dead one undoes all of it. Then it compares the routing the run could touch
// with the record of it from before the run.
func (e *Engine) rollback(ctx context.Context, tx *record.Transaction, done []phase, known bool, out *Outcome) error {
	// Up to two take-ups, each waiting at most Timeout.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*e.opts.Timeout)
	defer cancel()
	e.logf("rolling back: restoring the previous files")
	for _, ph := range undoPhases(tx, done, known) {
		ph.changes = e.unchangedSince(tx, ph.changes)
		if len(ph.changes) == 0 {
			continue
		}
		_, err := e.runPhase(rctx, ph, nil, out, func() {
			for _, c := range ph.changes {
				switch {
				case c.Kind == filesync.Remove:
					e.logf("removed /%s, which the run created", c.Path)
				case c.Link != "":
					e.logf("put back /%s as it was (a link to %s)", c.Path, c.Link)
				default:
					e.logf("put back /%s as it was (mode %04o)", c.Path, c.Mode.Perm())
				}
			}
		})
		if err != nil {
			if !errors.Is(err, errTakeUpWait) {
				return fmt.Errorf("finish the rollback: %w", err)
			}
			e.logf("note: %v", err)
		}
	}
	e.removeCreatedDirs(tx)
	if err := e.restoreLinks(tx); err != nil {
		e.logf("note: the links' addresses and routes from before the run were not all put back: %v", err)
	}
	if err := e.undoSysctls(tx); err != nil {
		return err
	}
	// The table's undo comes after the files', so a failure here leaves them restored; it must not stop the
	// rest of the rollback and keep the transaction pending for every later run.
	if err := e.undoConnmark(rctx, tx); err != nil {
		e.logf("note: nftables table inet symroute was not put back: %v", err)
	}
	if err := e.undoFollower(rctx, tx); err != nil {
		e.logf("note: the follower's rules were not put back: %v", err)
	}
	var keep []record.Rule
	if e.rec.Applied != nil {
		keep = e.rec.Applied.Rules
	}
	leftover, err := e.recordedRulesNotIn(tx.Target.Rules, keep, tx.Existing)
	if err != nil {
		return err
	}
	if err := e.deleteRules(leftover); err != nil {
		return err
	}
	out.RolledBack = true
	e.rec.Pending = nil
	if err := e.save(); err != nil {
		return err
	}
	return e.checkBefore(tx, out)
}

// unchangedSince keeps the undo changes whose file is still as tx left it (or already as the undo makes it): a
// file another program or a person wrote since is theirs now, and stays, with a note, as a sysctl does.
// Enablement links are symroute's alone and always undone.
func (e *Engine) unchangedSince(tx *record.Transaction, changes []filesync.Change) []filesync.Change {
	wrote := map[string]record.File{}
	for _, f := range tx.Target.Files {
		wrote[f.Path] = f
	}
	var out []filesync.Change
	for _, c := range changes {
		if c.Link != "" || c.OldLink != "" || wrote[c.Path].Link != "" {
			out = append(out, c)
			continue
		}
		now, err := fs.ReadFile(e.opts.Root.ReadFS(), c.Path)
		exists := err == nil
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			out = append(out, c) // unreadable: the undo's own write reports what is wrong
			continue
		}
		w, written := wrote[c.Path]
		asLeft := exists == written && (!exists || record.Hash(now) == w.SHA256)
		asUndone := c.Kind == filesync.Remove && !exists || c.Kind != filesync.Remove && exists && string(now) == string(c.New)
		if asLeft || asUndone {
			out = append(out, c)
			continue
		}
		e.logf("note: left /%s as it is: it changed after the run wrote it, so it is no longer the run's to undo", c.Path)
	}
	return out
}

// undoSysctls puts back each key the transaction set, while it holds the value the transaction set: the run may
// have failed before setting it, and a value set since is another program's.
func (e *Engine) undoSysctls(tx *record.Transaction) error {
	restored := 0
	for _, u := range tx.SysctlUndo {
		cur, exists, err := e.deps.Sysctl.Read(u.Key)
		if err != nil {
			return fmt.Errorf("read %s: %w", u.Key, err)
		}
		switch {
		case !exists || cur == u.Value:
			continue
		case cur != u.Set:
			e.logf("note: %s is %s, set by someone else meanwhile; left as it is rather than put back to %s", u.Key, cur, u.Value)
			continue
		}
		if err := e.deps.Sysctl.Write(u.Key, u.Value); err != nil {
			return fmt.Errorf("restore %s: %w", u.Key, err)
		}
		restored++
	}
	if restored > 0 {
		e.logf("put back %d sysctl value(s)", restored)
	}
	return nil
}

// maxBefore bounds the lines kept of the routing before a transaction: a node's own links and symroute's tables
// hold a few hundred routes at most; beyond this the record would grow with something symroute does not manage.
const maxBefore = 20000

// touchedScope is what a transaction can change in the kernel: the links networkd configures from symroute's
// files before and after, and symroute's tables before and after. The same for the record and for the check, as
// the applied state does not change while a transaction is pending.
func (e *Engine) touchedScope(tx *record.Transaction) (links []string, tables []uint32) {
	links = append(links, tx.Target.Links...)
	tables = append(tables, tx.Target.Tables...)
	if a := e.rec.Applied; a != nil {
		links = append(links, a.Links...)
		tables = append(tables, a.Tables...)
	}
	return links, tables
}

// recordBefore keeps in tx the routing it may touch, as it is now.
func (e *Engine) recordBefore(tx *record.Transaction) error {
	lines, err := e.routing(e.touchedScope(tx))
	if err != nil {
		return err
	}
	if len(lines) > maxBefore {
		tx.BeforeOmitted = len(lines)
		return nil
	}
	tx.Before = lines
	return nil
}

// checkBefore compares the routing the transaction could touch with the record of it from before.
func (e *Engine) checkBefore(tx *record.Transaction, out *Outcome) error {
	if tx.Before == nil {
		if tx.BeforeOmitted > 0 {
			e.logf("note: the routing before the run was too large to record (%d lines); it was not compared", tx.BeforeOmitted)
		}
		return nil
	}
	now, err := e.routing(e.touchedScope(tx))
	if err != nil {
		return err
	}
	out.PreviousChecked = true
	out.PreviousDiff = diffLines(tx.Before, now)
	out.PreviousBack = len(out.PreviousDiff) == 0
	if out.PreviousBack {
		e.logf("previous state verified: every rule, and every route on symroute's links and in its tables, is as before")
	}
	return nil
}

// routing lists, one line each, every rule, and every route on the given links or in the given tables (the
// local table aside): what a transaction's undo must leave as it found it. Routes name their link, so a link
// created again with another index compares equal.
func (e *Engine) routing(links []string, tables []uint32) ([]string, error) {
	rules, err := e.deps.Kernel.Rules()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rules {
		narrowed := ""
		if r.Narrowed {
			narrowed = ", with more selectors"
		}
		out = append(out, fmt.Sprintf("rule %s (proto %d, action %d, mark %#x/%#x%s)", drift.RuleString(r.Priority, r.From, r.To, r.Table), r.Protocol, r.Action, r.Mark, r.Mask, narrowed))
	}
	names := map[int]string{}
	seen := map[string]bool{}
	add := func(routes []routing.Route) {
		for _, r := range routes {
			if _, ok := names[r.LinkIndex]; !ok {
				names[r.LinkIndex], _ = e.deps.Kernel.LinkName(r.LinkIndex)
			}
			line := fmt.Sprintf("route %s dev %s metric %d", drift.RouteString(r.Destination, r.Gateway, r.Table), names[r.LinkIndex], r.Metric)
			if !seen[line] {
				seen[line] = true
				out = append(out, line)
			}
		}
	}
	for _, name := range links {
		index, ok, err := e.deps.Kernel.LinkIndex(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		routes, err := e.deps.Kernel.RoutesOn(index)
		if err != nil {
			return nil, err
		}
		add(routes)
	}
	for _, t := range tables {
		routes, err := e.deps.Kernel.Routes(t)
		if err != nil {
			return nil, err
		}
		add(routes)
	}
	sort.Strings(out)
	return out, nil
}

// diffLines lists what before has that now lacks, and what now has that before did not; both are sorted.
func diffLines(before, now []string) []string {
	var out []string
	i, j := 0, 0
	for i < len(before) || j < len(now) {
		switch {
		case j == len(now) || i < len(before) && before[i] < now[j]:
			out = append(out, "missing: "+before[i])
			i++
		case i == len(before) || now[j] < before[i]:
			out = append(out, "extra: "+now[j])
			j++
		default:
			i, j = i+1, j+1
		}
	}
	return out
}

func modeOf(m uint32) fs.FileMode { return fs.FileMode(m).Perm() }

// missingDirs are the directories the changes' new files need that do not exist now, deepest first.
func (e *Engine) missingDirs(changes []filesync.Change) []string {
	var out []string
	for _, c := range changes {
		if c.Kind != filesync.Create {
			continue
		}
		for dir := path.Dir(c.Path); dir != "." && dir != "/" && !slices.Contains(out, dir); dir = path.Dir(dir) {
			if _, err := fs.Stat(e.opts.Root.ReadFS(), dir); err == nil {
				break
			}
			out = append(out, dir)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out
}

// removeCreatedDirs removes the directories tx created, deepest first, each only if empty again: one that holds
// a file of someone else's stays, with its parents.
func (e *Engine) removeCreatedDirs(tx *record.Transaction) {
	for _, dir := range tx.CreatedDirs {
		parent, err := e.opts.Root.OpenDir(path.Dir(dir), false)
		if err != nil {
			continue
		}
		removed, err := parent.RemoveEmptyDir(path.Base(dir))
		parent.Close()
		switch {
		case err != nil:
			e.logf("note: /%s, which the run created, was not removed: %v", dir, err)
		case removed:
			e.logf("removed /%s, which the run created", dir)
		}
	}
}

// linksNow reads the addresses and main's routes of the named links, for the undo to put back what goes.
func (e *Engine) linksNow(names map[string]bool) ([]record.LinkState, error) {
	var out []record.LinkState
	for _, name := range slices.Sorted(maps.Keys(names)) {
		index, ok, err := e.deps.Kernel.LinkIndex(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		st := record.LinkState{Name: name}
		addrs, err := e.deps.Kernel.Addresses(index)
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			st.Addresses = append(st.Addresses, record.AddressAt{Prefix: a.Prefix, Broadcast: a.Broadcast})
		}
		routes, err := e.deps.Kernel.RoutesOn(index)
		if err != nil {
			return nil, err
		}
		for _, r := range routes {
			if r.Table == plan.MainTable && !r.Blocked && len(r.NextHopLinks) == 0 {
				st.Routes = append(st.Routes, record.MainRoute{Destination: r.Destination, Gateway: r.Gateway, Metric: r.Metric})
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// restoreLinks puts back on each link the addresses and routes of main it had before tx and has no more: networkd
// takes away what it configured when a link it was told to configure is let go, though it was there before it.
// It only adds, and only what was there.
func (e *Engine) restoreLinks(tx *record.Transaction) error {
	for _, st := range tx.LinksBefore {
		index, ok, err := e.deps.Kernel.LinkIndex(st.Name)
		if err != nil || !ok {
			continue
		}
		addrs, err := e.deps.Kernel.Addresses(index)
		if err != nil {
			return err
		}
		for _, a := range st.Addresses {
			if slices.ContainsFunc(addrs, func(b routing.Address) bool { return b.Prefix == a.Prefix }) {
				continue
			}
			if err := e.deps.Kernel.AddAddress(index, routing.Address{Prefix: a.Prefix, Broadcast: a.Broadcast}); err != nil {
				return err
			}
			e.logf("put back %s on %s, which it had before the run", a.Prefix, st.Name)
		}
		routes, err := e.deps.Kernel.RoutesOn(index)
		if err != nil {
			return err
		}
		for _, r := range st.Routes {
			if slices.ContainsFunc(routes, func(q routing.Route) bool {
				return q.Table == plan.MainTable && q.Destination == r.Destination && q.Gateway == r.Gateway
			}) {
				continue
			}
			if err := e.deps.Kernel.AddMainRoute(index, routing.Route{Destination: r.Destination, Gateway: r.Gateway, Metric: r.Metric}); err != nil {
				return err
			}
			e.logf("put back route %s via %s on %s in main, which it had before the run", orDefault(r.Destination), r.Gateway, st.Name)
		}
	}
	return nil
}

func orDefault(p netip.Prefix) string {
	if !p.IsValid() {
		return "default"
	}
	return p.String()
}
