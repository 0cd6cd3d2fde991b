package apply

import (
	"context"
	"strings"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/filesync"
	"github.com/symroute/symroute/internal/record"
)

// phase is one step networkd takes up: some file changes, then a reload, or, for the networkd.conf.d drop-in, a
// restart (networkd reads it only when it starts).
type phase struct {
	changes []filesync.Change
	restart bool
}

// phasesOf orders a change so that networkd always knows what it configured. A restart makes networkd forget
// the addresses, routes and rules it made, and, told to keep foreign ones, leave them in place: so the restart
// never comes with a change of the .network files. When the drop-in arrives, networkd restarts first, on the
// files it already runs, then reloads the new files and removes what they no longer have (while it still
// deletes foreign rules, a reload would take a CNI's rules). When the drop-in goes, the reload comes first, the
// restart after. confFirst records the order for an undo by a later run.
func phasesOf(changes []filesync.Change) (ps []phase, confFirst bool) {
	var conf, rest []filesync.Change
	for _, c := range changes {
		// A drop-in whose settings stay the same (its header changed) needs no restart.
		if c.Path == generator.NetworkdConfPath && (c.Kind != filesync.Update || settings(c.Old) != settings(c.New)) {
			conf = append(conf, c)
		} else {
			rest = append(rest, c)
		}
	}
	if len(conf) == 0 {
		return []phase{{changes: rest}}, false
	}
	confFirst = conf[0].Kind != filesync.Remove
	if len(rest) == 0 {
		return []phase{{changes: conf, restart: true}}, confFirst
	}
	if confFirst {
		return []phase{{changes: conf, restart: true}, {changes: rest}}, true
	}
	return []phase{{changes: rest}, {changes: conf, restart: true}}, false
}

// runPhases writes each phase's files and has networkd take them up; done gets every phase whose files were
// written, for the undo.
func (e *Engine) runPhases(ctx context.Context, ps []phase, managed []string, out *Outcome, done *[]phase) error {
	for _, ph := range ps {
		if err := filesync.Apply(e.opts.Root, ph.changes); err != nil {
			return err
		}
		*done = append(*done, ph)
		for _, c := range ph.changes {
			e.logf("%s /%s", c.Kind, c.Path)
		}
		if err := e.takeUp(ctx, changedLinks(ph.changes), ph.restart, managed, out); err != nil {
			return err
		}
	}
	return nil
}

// invert returns the phase that undoes ph: every file as it was, and the same kind of take-up.
func invert(ph phase) phase {
	inv := phase{restart: ph.restart}
	for _, c := range ph.changes {
		switch c.Kind {
		case filesync.Create:
			inv.changes = append(inv.changes, filesync.Change{Kind: filesync.Remove, Path: c.Path, Old: c.New, OldMode: c.Mode})
		case filesync.Update:
			inv.changes = append(inv.changes, filesync.Change{Kind: filesync.Update, Path: c.Path, Old: c.New, New: c.Old, Mode: c.OldMode, OldMode: c.Mode})
		case filesync.Remove:
			inv.changes = append(inv.changes, filesync.Change{Kind: filesync.Create, Path: c.Path, New: c.Old, Mode: c.OldMode})
		}
	}
	return inv
}

// undoPhases is the inverse of the phases done, in reverse order; for a transaction a dead run left (done
// unknown), the inverse of all of it, in the reverse of the order the record gives.
func undoPhases(tx *record.Transaction, done []phase, known bool) []phase {
	var out []phase
	if known {
		for i := len(done) - 1; i >= 0; i-- {
			out = append(out, invert(done[i]))
		}
		return out
	}
	var conf, rest phase
	conf.restart = true
	for _, u := range tx.Undo {
		c := filesync.Change{Kind: filesync.Remove, Path: u.Path}
		if u.Existed {
			c = filesync.Change{Kind: filesync.Update, Path: u.Path, New: u.Data, Mode: modeOf(u.Mode)}
		}
		if u.Path == generator.NetworkdConfPath {
			conf.changes = append(conf.changes, c)
		} else {
			rest.changes = append(rest.changes, c)
		}
	}
	switch {
	case len(conf.changes) == 0:
		return []phase{rest}
	case tx.ConfFirst:
		return []phase{rest, conf}
	default:
		return []phase{conf, rest}
	}
}

// settings is a configuration file without its comments and blank lines: what networkd reads from it.
func settings(data []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(line); t != "" && t[0] != '#' && t[0] != ';' {
			b.WriteString(t + "\n")
		}
	}
	return b.String()
}
