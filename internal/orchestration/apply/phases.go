package apply

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/filesync"
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
		if generator.TakesRestart(c.Path, c.Old, c.New) {
			conf = append(conf, c)
		} else {
			rest = append(rest, c)
		}
	}
	if len(conf) == 0 {
		return []phase{{changes: rest}}, false
	}
	confFirst = conf[0].Kind != filesync.Remove
	confPhase := phase{changes: conf, restart: true}
	switch {
	case len(rest) == 0:
		return []phase{confPhase}, confFirst
	case confFirst:
		return []phase{confPhase, {changes: rest}}, true
	}
	return []phase{{changes: rest}, confPhase}, false
}

// runPhases writes each phase's files and has networkd take them up; done gets every phase before its first file
// is written, so an undo covers a phase that failed halfway (putting back a file the phase had not reached yet
// writes the bytes it has). A restart held back is recorded in tx, so no undo, by this run or a later one, makes
// the restart the forward run avoided.
func (e *Engine) runPhases(ctx context.Context, tx *record.Transaction, ps []phase, managed []string, out *Outcome, done *[]phase) error {
	for _, ph := range ps {
		*done = append(*done, ph)
		restarted, err := e.runPhase(ctx, ph, managed, out, func() {
			for _, c := range ph.changes {
				e.logf("%s /%s", c.Kind, c.Path)
			}
		})
		if err != nil {
			// A phase that failed before its restart (its writes, or the hazard check) is undone without one:
			// the inverse of no restart is none.
			if ph.restart && !restarted {
				(*done)[len(*done)-1].restart = false
			}
			return err
		}
		if ph.restart && !restarted {
			(*done)[len(*done)-1].restart = false
			tx.Restart = false
			if err := e.save(); err != nil {
				return err
			}
		}
	}
	return nil
}

// runPhase writes one phase's files and has networkd take them up. A restart waits for networkd's next start
// where one now would fail (restartHazards): the forward run checks before anything changes where the restart
// comes first, so this holds back the restart for a drop-in that goes, and an undo's.
func (e *Engine) runPhase(ctx context.Context, ph phase, managed []string, out *Outcome, written func()) (restarted bool, err error) {
	if ph.restart {
		hazards, err := e.restartHazards(ctx, managed)
		if err != nil {
			return false, err
		}
		if len(hazards) > 0 {
			e.logf("note: not restarting systemd-networkd now: %s. It reads /%s as it is then when it next starts", strings.Join(hazards, "; "), ownership.NetworkdConfPath)
			if err := e.writeFiles(ph.changes); err != nil {
				return false, err
			}
			written()
			return false, nil
		}
	}
	if err := e.writeFiles(ph.changes); err != nil {
		return false, err
	}
	written()
	afterWrite()
	if touches(ph.changes, ownership.ConnmarkUnitPath) || touches(ph.changes, ownership.FollowUnitPath) {
		e.reloadManager(ctx)
	}
	return ph.restart, e.takeUp(ctx, changedLinks(ph.changes), ph.restart, managed, out)
}

// afterWrite runs between a phase's writes and networkd's take-up; only the integration tests' build sets it, to
// kill the process at the one moment a test cannot reach from outside (faults.go).
var afterWrite = func() {}

// writeFiles writes a phase's files; tests put a failure in between them.
func (e *Engine) writeFiles(changes []filesync.Change) error {
	if e.writeHook != nil {
		return e.writeHook(changes)
	}
	return filesync.Apply(e.opts.Root, changes)
}

// invert returns the phase that undoes ph: every file and link as it was, and the same kind of take-up (no
// restart where the forward run held its restart back).
func invert(ph phase) phase {
	inv := phase{restart: ph.restart}
	for _, c := range ph.changes {
		switch c.Kind {
		case filesync.Create:
			inv.changes = append(inv.changes, filesync.Change{Kind: filesync.Remove, Path: c.Path, Old: c.New, OldMode: c.Mode, OldLink: c.Link})
		case filesync.Update:
			inv.changes = append(inv.changes, filesync.Change{Kind: filesync.Update, Path: c.Path, Old: c.New, New: c.Old, Mode: c.OldMode, OldMode: c.Mode, Link: c.OldLink, OldLink: c.Link})
		case filesync.Remove:
			inv.changes = append(inv.changes, filesync.Change{Kind: filesync.Create, Path: c.Path, New: c.Old, Mode: c.OldMode, Link: c.OldLink})
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
	// The drop-in restarts networkd only where the forward run decided it would (not for a new header alone).
	var conf, rest phase
	conf.restart = tx.Restart
	for _, u := range tx.Undo {
		c := filesync.Change{Kind: filesync.Remove, Path: u.Path}
		if u.Existed {
			c = filesync.Change{Kind: filesync.Update, Path: u.Path, New: u.Data, Mode: modeOf(u.Mode), Link: u.Link}
		}
		if u.Path == ownership.NetworkdConfPath {
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

// firstRestartHazard is the networkd version from which the restart below is no longer known to fail: the
// request queue was reworked in 256.
const firstSafeRestart = 256

// restartHazards names the IPv4 addresses, on the links a restarted networkd would configure now, whose broadcast
// differs from the one networkd computes for them (an address added by hand without "brd +"). networkd 252 cannot
// start on such an address: it queues its request under a hash that the address it then reads changes, sends it
// again and again until sd-netlink has 65535 replies outstanding, and fails the links with ERANGE. The kernel
// never changes an address's broadcast in place, so only deleting and re-adding it, or a reboot, cures it.
func (e *Engine) restartHazards(ctx context.Context, candidates []string) ([]string, error) {
	if e.deps.NetworkdVersion == nil {
		return nil, nil
	}
	// A version that cannot be read is taken for an old one: the check only ever holds a restart back.
	if v, err := e.deps.NetworkdVersion(ctx, true); err == nil && v >= firstSafeRestart {
		return nil, nil
	}
	links, err := e.managedNow(candidates, nil)
	if err != nil {
		return nil, err
	}
	// A restart configures every link networkd manages, not only symroute's.
	if all, err := e.deps.Networkd.DescribeLinks(ctx); err == nil {
		for _, l := range all {
			if l.AdministrativeState != "unmanaged" && l.Name != "" && !slices.Contains(links, l.Name) {
				links = append(links, l.Name)
			}
		}
	}
	sort.Strings(links)
	var out []string
	for _, name := range links {
		index, ok, err := e.deps.Kernel.LinkIndex(name)
		if err != nil || !ok {
			continue
		}
		addrs, err := e.deps.Kernel.Addresses(index)
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if !a.Prefix.Addr().Is4() || a.Prefix.Bits() > 30 {
				continue
			}
			if want := subnetBroadcast(a.Prefix); a.Broadcast != want {
				have := "no broadcast"
				if a.Broadcast.IsValid() {
					have = "broadcast " + a.Broadcast.String()
				}
				out = append(out, fmt.Sprintf("%s's address %s has %s, not %s", name, a.Prefix, have, want))
			}
		}
	}
	return out, nil
}

func subnetBroadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | (uint32(1)<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// reloadManager tells systemd that symroute's unit changed. Nothing depends on it now (the boot reads the unit
// anyway, and apply loads the table itself), so a manager that does not answer is only noted.
func (e *Engine) reloadManager(ctx context.Context) {
	if e.deps.ReloadManager == nil {
		return
	}
	if err := e.deps.ReloadManager(ctx); err != nil {
		e.logf("note: systemd did not read symroute's units again (%v); it reads them when it next starts", err)
		return
	}
	e.logf("systemd read symroute's units again")
}
