package apply

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/networkfiles"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/filesync"
	"github.com/symroute/symroute/internal/edges/networkd"
	"github.com/symroute/symroute/internal/edges/sockets"
	"github.com/symroute/symroute/internal/orchestration/state"
)

// Request is one apply or try.
type Request struct {
	Plan  *plan.Plan
	Files []fileset.File
	// Description names the description, for the record.
	Description string
	// Op is record.OpApply or record.OpTry; a try stays pending, verified, until confirmed or rolled back.
	Op record.Op
	// Deadline is when an unconfirmed try rolls back.
	Deadline time.Time
	// Watch starts the process that rolls a try back at its deadline, or at once if the run dies before the try
	// verified. It is called once the pending record is written and before anything changes, so no moment of a
	// try is without it; an error leaves the host untouched.
	Watch func(tx *record.Transaction) (record.Process, error)
}

// Outcome is what a run did and found.
type Outcome struct {
	Changes []filesync.Change
	// Lost is what the change removes: addresses, rules and routes.
	Lost Lost
	// Connections are the established connections that use an address the change removes.
	Connections []sockets.Conn
	Restarted   bool
	// Result is the last verification: of the new state, or, after a rollback, of the new state that failed.
	Result   drift.Result
	Verified bool
	// RolledBack says the previous state was restored. PreviousChecked says the routing the run could touch was
	// compared with the record of it from before the run, PreviousBack that it is the same, and PreviousDiff
	// what differs when not.
	RolledBack      bool
	PreviousChecked bool
	PreviousBack    bool
	PreviousDiff    []string
	// Kept says a failed run's state was kept, as --no-rollback asks.
	Kept bool
	// Interrupted says a signal ended the run.
	Interrupted bool
}

// Apply runs one apply or try. An error means the system could not be read or written, or the change was
// refused before anything changed (ErrRefused); a failed verification is reported in the outcome, after the
// rollback.
func (e *Engine) Apply(ctx context.Context, req Request) (Outcome, error) {
	var out Outcome
	if e.rec.Pending != nil {
		return out, errors.New("a transaction is pending; recover it first")
	}
	changes, err := filesync.Compute(e.opts.Root, req.Files, ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs)
	if err != nil {
		return out, err
	}
	out.Changes = changes
	target := targetState(req)
	ps, confFirst := phasesOf(changes)
	restart := slices.ContainsFunc(ps, func(ph phase) bool { return ph.restart })

	out.Lost = lost(changes, req.Files)
	if err := e.leasedAddresses(&out.Lost); err != nil {
		return out, err
	}
	for _, line := range out.Lost.Lines() {
		e.logf("will remove %s", line)
	}
	sysUndo, sysWrites, err := e.sysctlPlan(req.Plan.Sysctls, &target)
	if err != nil {
		return out, err
	}
	if err := e.guard(out.Lost, &out); err != nil {
		return out, err
	}
	if req.Op == record.OpApply {
		if err := e.guardMarks(req.Plan); err != nil {
			return out, err
		}
	}
	if err := e.guardDefaultRoute(req.Plan); err != nil {
		return out, err
	}
	if err := e.checkNetworkd(ctx, target.KeepForeign, restart); err != nil {
		return out, err
	}
	if err := e.checkConnmark(req.Plan); err != nil {
		return out, err
	}
	if restart && confFirst {
		// The restart comes first, on the files in place now.
		hazards, err := e.restartHazards(ctx, managedLinks(req.Plan))
		if err != nil {
			return out, err
		}
		if len(hazards) > 0 {
			return out, fmt.Errorf("/%s changes, which takes a restart of systemd-networkd, and networkd before %d fails to start on an IPv4 address whose broadcast differs from the one it computes (it gives up with \"Numerical result out of range\"): %s. Nothing was changed. Re-add each address with its broadcast at a quiet moment (ip addr del ADDR dev LINK && ip addr add ADDR brd + dev LINK), or reboot so networkd configures it itself, then apply again",
				ownership.NetworkdConfPath, firstSafeRestart, strings.Join(hazards, "; "))
		}
	}
	var stale []record.Rule
	if e.rec.Applied != nil {
		if stale, err = e.recordedRulesNotIn(e.rec.Applied.Rules, target.Rules, nil); err != nil {
			return out, err
		}
	}
	if len(changes) == 0 && len(sysWrites) == 0 && len(stale) == 0 && req.Op == record.OpApply {
		return e.converge(ctx, req, target, out)
	}

	target.Transaction = newID()
	tx := &record.Transaction{
		ID: target.Transaction, Op: req.Op, Process: e.deps.Self, Started: time.Now().UTC(), Deadline: req.Deadline,
		Undo: undo(changes), SysctlUndo: sysUndo, Restart: restart, ConfFirst: confFirst, Target: target,
	}
	if tx.Existing, err = e.existingRules(target.Rules, e.rec.Applied); err != nil {
		return out, err
	}
	if tx.ConnmarkBefore, err = e.connmarkNow(); err != nil {
		return out, err
	}
	tx.FollowBefore = e.followBefore()
	tx.CreatedDirs = e.missingDirs(changes)
	if tx.LinksBefore, err = e.linksNow(changedLinks(changes)); err != nil {
		return out, err
	}
	if err := e.recordBefore(tx); err != nil {
		return out, err
	}
	e.rec.Pending = tx
	if err := e.save(); err != nil {
		e.rec.Pending = nil
		return out, err
	}
	if req.Watch != nil {
		w, err := req.Watch(tx)
		if err == nil {
			tx.Watcher = &w
			err = e.save()
		}
		if err != nil {
			e.rec.Pending = nil
			return out, errors.Join(fmt.Errorf("start the process that rolls the try back: %w; nothing was changed", err), e.save())
		}
	}

	// From here every failure, and an interruption, is answered with the exact inverse, or, under --no-rollback,
	// with the rest of the run.
	var done []phase
	var sysctlsSet, staleDeleted, connmarkDone, followDone bool
	settle := func() error {
		if e.opts.NoRollback && !out.Interrupted && req.Op == record.OpApply {
			return e.keep(&target, &out, func() (errs []error) {
				if !sysctlsSet {
					errs = append(errs, e.setSysctls(ctx, req.Plan.Sysctls, sysWrites, touches(changes, ownership.SysctlPath)))
				}
				if !staleDeleted {
					errs = append(errs, e.deleteRules(stale))
				}
				if !connmarkDone {
					errs = append(errs, e.takeUpConnmark(ctx, req.Plan, touches(changes, ownership.ConnmarkRulesetPath), &target))
				}
				if !followDone {
					errs = append(errs, e.takeUpFollower(ctx, req.Plan, tx.FollowBefore, followerChanged(changes), &target))
				}
				return errs
			})
		}
		return e.rollback(ctx, tx, done, true, &out)
	}
	fail := func(cause error) (Outcome, error) {
		if errors.Is(ctx.Err(), context.Canceled) {
			out.Interrupted = true
			cause = errors.New("interrupted")
		}
		return out, errors.Join(cause, settle())
	}
	if err := e.runPhases(ctx, tx, ps, managedLinks(req.Plan), &out, &done); err != nil {
		return fail(err)
	}
	if err := e.setSysctls(ctx, req.Plan.Sysctls, sysWrites, touches(changes, ownership.SysctlPath)); err != nil {
		return fail(err)
	}
	sysctlsSet = true
	// Listed again: networkd has removed most of them itself by now.
	if err := e.deleteRules(stale); err != nil {
		return fail(err)
	}
	staleDeleted = true
	if err := e.takeUpConnmark(ctx, req.Plan, touches(changes, ownership.ConnmarkRulesetPath), &target); err != nil {
		return fail(err)
	}
	connmarkDone = true
	if err := e.takeUpFollower(ctx, req.Plan, tx.FollowBefore, followerChanged(changes), &target); err != nil {
		return fail(err)
	}
	followDone = true
	res, err := e.verifyUntil(ctx, req.Plan, req.Files, &target)
	out.Result = res
	if err != nil {
		return fail(err)
	}
	if !res.OK() {
		// Reported in the outcome; an error only where the undo itself failed.
		e.logf("verification failed within %v", e.opts.Timeout)
		return out, settle()
	}
	out.Verified = true
	if req.Op == record.OpTry {
		tx.Verified = true
		return out, e.save()
	}
	e.rec.Applied, e.rec.Pending = &target, nil
	return out, e.save()
}

// keep answers a failure under --no-rollback: the steps the run did not reach are still taken, as far as they
// go, and the target becomes the applied state, so no later run undoes what the user chose to keep.
func (e *Engine) keep(target *record.State, out *Outcome, rest func() []error) error {
	e.logf("keeping the new state although it failed (--no-rollback)")
	errs := rest()
	out.Kept = true
	e.rec.Applied, e.rec.Pending = target, nil
	return errors.Join(append(errs, e.save())...)
}

// converge handles a run with nothing to write: one look, and where the state drifted it is repaired. networkd may
// not run the files on disk (written by generate, Ignition, a kept failure, or recover before networkd started):
// it reloads them first, which leaves every link whose file it already runs alone. A drift that remains (a rule
// deleted by hand, a table flushed, an rp_filter changed) has networkd apply the drifted links' configuration
// again. Nothing changes that a rollback would have to undo.
func (e *Engine) converge(ctx context.Context, req Request, target record.State, out Outcome) (Outcome, error) {
	e.logf("no file changed")
	// The table is loaded from the file unless it is what the record says: a reboot's load, or the last apply's.
	if err := e.takeUpConnmark(ctx, req.Plan, false, &target); err != nil {
		return out, err
	}
	if err := e.takeUpFollower(ctx, req.Plan, e.followBefore(), false, &target); err != nil {
		return out, err
	}
	expect := drift.Expect{NetworkFiles: generator.ExpectedNetworkFiles(req.Files), Recorded: e.rec.Applied}
	res, err := state.Verify(ctx, req.Plan, expect, e.sources())
	out.Result = res
	if err != nil || res.OK() {
		return e.converged(out, err, target)
	}
	e.logf("%d problem(s); reloading systemd-networkd, in case it does not run the files on disk", len(res.Findings))
	all := map[string]bool{}
	for _, name := range managedLinks(req.Plan) {
		all[name] = true
	}
	if err := e.takeUp(ctx, all, false, managedLinks(req.Plan), &out); err != nil {
		return out, err
	}
	if res, err = state.Verify(ctx, req.Plan, expect, e.sources()); err != nil || res.OK() {
		out.Result = res
		return e.converged(out, err, target)
	}
	e.logf("%d problem(s) with the files taken up; asking networkd to configure the drifted links again", len(res.Findings))
	if err := e.repair(ctx, req.Plan, res); err != nil {
		return out, err
	}
	if out.Result, err = e.verifyUntil(ctx, req.Plan, req.Files, &target); err != nil || !out.Result.OK() {
		return out, err
	}
	return e.converged(out, nil, target)
}

// converged records a verified state whose files the record does not list (written by generate or Ignition, now
// known to be symroute's).
func (e *Engine) converged(out Outcome, err error, target record.State) (Outcome, error) {
	out.Verified = err == nil
	if err == nil && (!sameFiles(e.rec.Applied, target) || e.rec.Applied.Connmark != target.Connmark || e.rec.Applied.ConnmarkKernel != target.ConnmarkKernel ||
		!slices.Equal(e.rec.Applied.Follow, target.Follow)) {
		e.rec.Applied = &target
		err = e.save()
	}
	return out, err
}

// sameFiles reports whether the record's applied state lists exactly the target's files.
func sameFiles(applied *record.State, target record.State) bool {
	return applied != nil && slices.Equal(applied.Files, target.Files)
}

// repair reconfigures the links with findings (every link when a finding concerns none). In networkd 252
// ReconfigureLink drops and re-adds the link's addresses, so links that did not drift are left alone.
func (e *Engine) repair(ctx context.Context, p *plan.Plan, res drift.Result) error {
	sysctls, all := false, false
	drifted := map[string]bool{}
	for _, f := range res.Findings {
		switch f.Kind {
		case drift.RPFilterWrong, drift.SrcValidMarkOff:
			sysctls = true
			continue
		case drift.ConnmarkMissing, drift.ConnmarkAltered, drift.ConnmarkStale:
			continue // the table is loaded or deleted by takeUpConnmark, not by networkd
		}
		drifted[f.Interface] = true
		all = all || f.Interface == ""
	}
	events, stop := e.watch()
	defer stop()
	links := map[string]bool{}
	for _, name := range managedLinks(p) {
		if !all && !drifted[name] {
			continue
		}
		index, ok, err := e.deps.Kernel.LinkIndex(name)
		if err != nil {
			return err
		}
		if ok {
			if err := e.deps.Networkd.ReconfigureLink(ctx, index); err != nil {
				return err
			}
			e.logf("asked networkd to configure %s again", name)
			links[name] = true
		}
	}
	if sysctls {
		if err := e.applySysctls(ctx, p.Sysctls); err != nil {
			return err
		}
	}
	return e.waitLinks(ctx, events, links, managedLinks(p), false)
}

// takeUp has networkd take the new files up: a restart when networkd.conf.d changed (networkd reads it only at
// start, and a reload before it would reconfigure links while it still deletes foreign rules), a reload
// otherwise; then it waits for networkd's word on the links.
func (e *Engine) takeUp(ctx context.Context, changed map[string]bool, restart bool, candidates []string, out *Outcome) error {
	managed, err := e.managedNow(candidates, changed)
	if err != nil {
		return err
	}
	events, stop := e.watch()
	defer stop()
	if restart {
		e.logf("restarting systemd-networkd: networkd reads /%s only when it starts", ownership.NetworkdConfPath)
		if err := e.deps.RestartNetworkd(ctx); err != nil {
			return fmt.Errorf("restart systemd-networkd: %w", err)
		}
		out.Restarted = true
		// The new networkd announces on a new connection: poll its link states from the start.
		stop()
		events = nil
	} else {
		if err := e.deps.Networkd.Reload(ctx); err != nil {
			return err
		}
		e.logf("reloaded systemd-networkd")
	}
	return e.waitLinks(ctx, events, changed, managed, restart)
}

// managedNow returns, of the candidate links and the changed ones, those a .network file under the root
// configures now (symroute's or another's): the ones networkd must report configured. A link no file matches is
// unmanaged, as it should be.
func (e *Engine) managedNow(candidates []string, changed map[string]bool) ([]string, error) {
	files, err := networkfiles.Load(e.opts.Root.ReadFS(), nil)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	consider := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		link := networkfiles.Link{Name: name}
		if name == generator.Loopback.Name {
			link = generator.Loopback
		}
		if _, ok := networkfiles.FirstMatch(files, link); ok {
			out = append(out, name)
		}
	}
	for _, name := range candidates {
		consider(name)
	}
	if e.rec.Applied != nil {
		for _, name := range e.rec.Applied.Links {
			consider(name)
		}
	}
	for name := range changed {
		consider(name)
	}
	sort.Strings(out)
	return out, nil
}

// watch subscribes to networkd's link states; without the subscription, waiting polls only.
func (e *Engine) watch() (<-chan networkd.LinkEvent, func()) {
	events, stop, err := e.deps.Networkd.WatchLinks()
	if err != nil {
		e.logf("note: %v; polling networkd instead", err)
		return nil, func() {}
	}
	return events, stop
}

// sysctlPlan reads the keys the target sets and says which to write: the keys whose value differs, with their
// value now for the undo; and, kept in target, each key's value before symroute first set it.
func (e *Engine) sysctlPlan(settings []plan.Sysctl, target *record.State) ([]record.SysctlUndo, []plan.Sysctl, error) {
	var undo []record.SysctlUndo
	var writes []plan.Sysctl
	for _, s := range settings {
		cur, exists, err := e.deps.Sysctl.Read(s.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", s.Key, err)
		}
		rec := record.Sysctl{Key: s.Key, Value: s.Value, Original: cur, Absent: !exists}
		if prev, ok := e.rec.Applied.Sysctl(s.Key); ok {
			rec.Original, rec.Absent = prev.Original, prev.Absent
		}
		target.Sysctls = append(target.Sysctls, rec)
		if exists && cur != s.Value {
			e.logf("will set %s from %s to %s", s.Key, cur, s.Value)
			writes = append(writes, s)
			undo = append(undo, record.SysctlUndo{Key: s.Key, Value: cur, Set: s.Value})
		}
	}
	// A key symroute set that the plan no longer has (its interface left the description) goes back to its value
	// from before symroute, if it still holds symroute's value.
	if e.rec.Applied != nil {
		restore, restoreUndo, err := e.restores(e.rec.Applied.Sysctls, func(key string) bool {
			return slices.ContainsFunc(settings, func(s plan.Sysctl) bool { return s.Key == key })
		})
		if err != nil {
			return nil, nil, err
		}
		writes, undo = append(writes, restore...), append(undo, restoreUndo...)
	}
	return undo, writes, nil
}

// restores says which keys symroute set go back to their value from before symroute (all but those kept): only
// those that still hold the value symroute set. A value set since is another program's or the administrator's,
// and stays. It returns the writes and their undo.
func (e *Engine) restores(set []record.Sysctl, kept func(key string) bool) ([]plan.Sysctl, []record.SysctlUndo, error) {
	var writes []plan.Sysctl
	var undo []record.SysctlUndo
	for _, s := range set {
		if s.Absent || kept(s.Key) {
			continue
		}
		cur, exists, err := e.deps.Sysctl.Read(s.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", s.Key, err)
		}
		switch {
		case !exists || cur == s.Original:
			continue
		case cur != s.Value:
			e.logf("note: %s is %s, set since by someone else; left as it is rather than put back to %s", s.Key, cur, s.Original)
			continue
		}
		e.logf("will set %s back to %s, its value before symroute", s.Key, s.Original)
		writes = append(writes, plan.Sysctl{Key: s.Key, Value: s.Original, Why: "restore"})
		undo = append(undo, record.SysctlUndo{Key: s.Key, Value: s.Value, Set: s.Original})
	}
	return writes, undo, nil
}

// setSysctls makes the target's keys take effect: symroute's keys through systemd-sysctl, as the next boot sets
// them, and keys it no longer sets back to their value from before symroute.
func (e *Engine) setSysctls(ctx context.Context, settings, writes []plan.Sysctl, fileChanged bool) error {
	var restore []plan.Sysctl
	for _, w := range writes {
		if w.Why == "restore" {
			restore = append(restore, w)
		}
	}
	if fileChanged || len(writes) > len(restore) {
		if err := e.applySysctls(ctx, settings); err != nil {
			return err
		}
	}
	for _, r := range restore {
		if err := e.deps.Sysctl.Write(r.Key, r.Value); err != nil {
			return fmt.Errorf("restore %s: %w", r.Key, err)
		}
		e.logf("set %s back to %s", r.Key, r.Value)
	}
	return nil
}

func (e *Engine) applySysctls(ctx context.Context, settings []plan.Sysctl) error {
	how, err := e.deps.Sysctl.Apply(ctx, settings)
	if err != nil {
		return fmt.Errorf("apply sysctls: %w", err)
	}
	if how != "" {
		e.logf("sysctl: %s", how)
	}
	return nil
}

// checkNetworkd refuses what this networkd cannot do: keep foreign rules before 249, or be restarted where no
// systemd manager answers.
func (e *Engine) checkNetworkd(ctx context.Context, keepForeign, restart bool) error {
	// The version is asked only where it decides something: components declared (249 keeps their rules), a
	// restart, or --strict. It costs a D-Bus round trip, or a process where no manager answers.
	if e.deps.NetworkdVersion != nil && (keepForeign || restart || e.opts.Strict) {
		v, err := e.deps.NetworkdVersion(ctx, keepForeign || restart)
		switch {
		case err != nil && (keepForeign || restart):
			e.logf("note: networkd's version is unknown (%v)", err)
		case err != nil:
		case v < 249 && keepForeign:
			return fmt.Errorf("systemd-networkd %d ignores ManageForeignRoutingPolicyRules (it needs 249): it would delete the rules of the declared components. Nothing was changed", v)
		case v < 249 && e.opts.Strict:
			return fmt.Errorf("systemd-networkd %d is older than 249, the oldest symroute is tested against; nothing was changed (--strict)", v)
		case v < 249:
			e.logf("warning: systemd-networkd %d is older than 249, the oldest symroute is tested against", v)
		}
	}
	if restart && e.deps.ManagerAvailable != nil {
		if err := e.deps.ManagerAvailable(ctx); err != nil {
			return fmt.Errorf("/%s changes, and networkd reads it only when it starts, but %v, so symroute cannot restart it. Nothing was changed: write the files with symroute generate and restart systemd-networkd yourself", ownership.NetworkdConfPath, err)
		}
	}
	return nil
}

func (e *Engine) sources() state.Sources {
	src := state.Sources{Kernel: e.deps.Kernel, Networkd: e.deps.Networkd, Sysctl: e.deps.Sysctl}
	if e.deps.Connmark != nil {
		src.Connmark = e.deps.Connmark
	}
	return src
}

// verifyUntil verifies until the state matches or the deadline passes: networkd works asynchronously.
func (e *Engine) verifyUntil(ctx context.Context, p *plan.Plan, files []fileset.File, target *record.State) (drift.Result, error) {
	deadline := time.Now().Add(e.opts.Timeout)
	expect := drift.Expect{NetworkFiles: generator.ExpectedNetworkFiles(files), Recorded: target}
	for {
		// As the follower would: an address a link takes while networkd configures it (an advertisement's, which
		// comes a moment after the link is configured) gets its rule before the look that checks it.
		if err := e.syncFollower(target.Follow, nil); err != nil {
			return drift.Result{}, err
		}
		res, err := state.Verify(ctx, p, expect, e.sources())
		if err != nil || res.OK() || time.Now().After(deadline) || missingLink(res) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(e.opts.Poll):
		}
	}
}

// missingLink reports a finding no waiting can fix: a link that does not exist.
func missingLink(res drift.Result) bool {
	return slices.ContainsFunc(res.Findings, func(f drift.Finding) bool { return f.Kind == drift.LinkMissing })
}

// targetState is what the request leaves in place, for the record (sysctls are added by sysctlPlan).
func targetState(req Request) record.State {
	t := record.State{Description: req.Description, Addresses: map[string][]netip.Prefix{}, KeepForeign: req.Plan.KeepForeign, Links: managedLinks(req.Plan)}
	for _, f := range req.Files {
		rf := record.File{Path: f.Path, SHA256: record.Hash(f.Data), Mode: uint32(f.Mode.Perm()), Link: f.Link}
		if f.Link != "" {
			rf.Mode = 0 // a link has no mode of its own
		}
		t.Files = append(t.Files, rf)
	}
	for _, r := range req.Plan.KernelRules() {
		t.Rules = append(t.Rules, r.Rule)
	}
	t.Follow = req.Plan.FollowSlots()
	for _, ifc := range req.Plan.Interfaces {
		t.Tables = append(t.Tables, ifc.Table)
		if ifc.Mode == description.ModeOwn {
			t.Addresses[ifc.Name] = ifc.Addresses
		}
	}
	return t
}

// followerChanged says whether the follower's unit or script changes, so the running one must start again.
func followerChanged(changes []filesync.Change) bool {
	return touches(changes, ownership.FollowUnitPath) || touches(changes, ownership.FollowScriptPath)
}

// managedLinks are the links networkd configures from symroute's files: every interface, and lo when it carries
// the cluster rules.
func managedLinks(p *plan.Plan) []string {
	var out []string
	if len(p.ClusterRules) > 0 {
		out = append(out, generator.Loopback.Name)
	}
	for _, ifc := range p.Interfaces {
		out = append(out, ifc.Name)
	}
	return out
}

// changedLinks are the links whose .network file or drop-in a change touches: networkd reconfigures exactly
// those on a reload.
func changedLinks(changes []filesync.Change) map[string]bool {
	out := map[string]bool{}
	for _, c := range changes {
		if name, ok := ownership.LinkOf(c.Path, c.New, c.Old); ok {
			out[name] = true
		}
	}
	return out
}

func touches(changes []filesync.Change, p string) bool {
	return slices.ContainsFunc(changes, func(c filesync.Change) bool { return c.Path == p })
}

// undo records every file and link a change touches as it was.
func undo(changes []filesync.Change) []record.FileUndo {
	var out []record.FileUndo
	for _, c := range changes {
		u := record.FileUndo{Path: c.Path}
		if c.Kind != filesync.Create {
			u.Existed, u.Data, u.Mode, u.Link = true, c.Old, uint32(c.OldMode.Perm()), c.OldLink
		}
		out = append(out, u)
	}
	return out
}
