package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/symroute/symroute/internal/drift"
	"github.com/symroute/symroute/internal/filesync"
	"github.com/symroute/symroute/internal/record"
)

// rollback carries out tx's inverse in a context of its own (an interrupted run still rolls back, within the
// timeout): the phases done undone in reverse order, each file with its previous bytes and mode, each with the
// same kind of take-up (a restart undoes a restart); then the previous value of every key, and the deletion of
// rules the run made that networkd keeps. known says done lists what the run did; a later run undoing a dead
// one undoes all of it. With before, it then checks that every rule and route, foreign ones included, is as it
// was.
func (e *Engine) rollback(ctx context.Context, tx *record.Transaction, before *snapshot, done []phase, known bool, out *Outcome) error {
	// Up to two take-ups, each waiting at most Timeout.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*e.opts.Timeout)
	defer cancel()
	e.logf("rolling back: restoring the previous files")
	for _, ph := range undoPhases(tx, done, known) {
		if len(ph.changes) == 0 {
			continue
		}
		if err := filesync.Apply(e.opts.Root, ph.changes); err != nil {
			return fmt.Errorf("restore the previous files: %w", err)
		}
		for _, c := range ph.changes {
			if c.Kind == filesync.Remove {
				e.logf("removed /%s, which the run created", c.Path)
			} else {
				e.logf("restored /%s (mode %04o)", c.Path, c.Mode.Perm())
			}
		}
		changed := changedLinks(ph.changes)
		if err := e.takeUp(rctx, changed, ph.restart, nil, out); err != nil {
			if !errors.Is(err, errTakeUpWait) {
				return fmt.Errorf("finish the rollback: %w", err)
			}
			e.logf("note: %v", err)
		}
	}
	for _, u := range tx.SysctlUndo {
		if u.Absent {
			continue
		}
		if err := e.deps.Sysctl.Write(u.Key, u.Value); err != nil {
			return fmt.Errorf("restore %s: %w", u.Key, err)
		}
	}
	if len(tx.SysctlUndo) > 0 {
		e.logf("restored %d sysctl value(s)", len(tx.SysctlUndo))
	}
	var keep []record.Rule
	if e.rec.Applied != nil {
		keep = e.rec.Applied.Rules
	}
	leftover, err := e.recordedRulesNotIn(tx.Target.Rules, keep)
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
	if before == nil {
		return nil
	}
	now, err := e.snapshot()
	if err != nil {
		return err
	}
	out.PreviousDiff = before.diff(now)
	out.PreviousBack = len(out.PreviousDiff) == 0
	if out.PreviousBack {
		e.logf("previous state verified: every rule and route, foreign ones included, is as before")
	}
	return nil
}

// snapshot is every rule and every route but the local table's, as strings, for "is it as before?".
type snapshot struct {
	entries map[string]bool
}

func (e *Engine) snapshot() (*snapshot, error) {
	s := &snapshot{entries: map[string]bool{}}
	rules, err := e.deps.Kernel.Rules()
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		s.entries[fmt.Sprintf("rule %s (proto %d)", drift.RuleString(r.Priority, r.From, r.To, r.Table), r.Protocol)] = true
	}
	routes, err := e.deps.Kernel.AllRoutes()
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		s.entries[fmt.Sprintf("route %s dev %d", drift.RouteString(r.Destination, r.Gateway, r.Table), r.LinkIndex)] = true
	}
	return s, nil
}

// diff lists what before has that now lacks, and what now has that before did not.
func (s *snapshot) diff(now *snapshot) []string {
	var out []string
	for k := range s.entries {
		if !now.entries[k] {
			out = append(out, "missing: "+k)
		}
	}
	for k := range now.entries {
		if !s.entries[k] {
			out = append(out, "extra: "+k)
		}
	}
	sort.Strings(out)
	return out
}

func modeOf(m uint32) fs.FileMode { return fs.FileMode(m).Perm() }
