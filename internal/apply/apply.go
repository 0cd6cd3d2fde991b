// Package apply makes a plan live: it writes the changed files, has networkd reload them, applies the sysctls,
// waits for the links, removes symroute's stale rules, and verifies. When verification fails within the time
// limit it restores the previous files and checks that the previous state is back. Everything it wants lives in
// networkd's files; its only netlink write is deleting stale rules of its own.
package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/drift"
	"github.com/symroute/symroute/internal/filesync"
	"github.com/symroute/symroute/internal/kernel"
	"github.com/symroute/symroute/internal/networkd"
	"github.com/symroute/symroute/internal/plan"
	"github.com/symroute/symroute/internal/rootfs"
	"github.com/symroute/symroute/internal/state"
)

// Networkd is what apply asks of systemd-networkd; *networkd.Client implements it.
type Networkd interface {
	Reload(ctx context.Context) error
	ReconfigureLink(ctx context.Context, ifindex int) error
	DescribeLink(ctx context.Context, ifindex int) (networkd.Link, error)
}

// Kernel is what apply reads from and deletes in the kernel; *kernel.Reader implements it.
type Kernel interface {
	state.Kernel
	DeleteRule(kernel.Rule) error
}

// Sysctl makes sysctl settings take effect and says how.
type Sysctl interface {
	Apply(ctx context.Context, settings []plan.Sysctl) (string, error)
}

// Deps are apply's edges.
type Deps struct {
	Kernel   Kernel
	Networkd Networkd
	Sysctl   Sysctl
	// RestartNetworkd restarts systemd-networkd through systemd, for settings networkd reads only at start.
	RestartNetworkd func(ctx context.Context) error
	ProcSys         string
}

// Options tune a run.
type Options struct {
	Root    *rootfs.Root
	Timeout time.Duration
	// NoRollback keeps the new files when verification fails.
	NoRollback bool
	// Poll is how often the state is read while waiting.
	Poll time.Duration
	// Log receives one line per step.
	Log io.Writer
}

// Outcome is what a run did and found.
type Outcome struct {
	Changes  []filesync.Change
	Reloaded bool
	// Result is the last verification: of the new state, or, after a rollback, of the new state that failed.
	Result     drift.Result
	RolledBack bool
	// PreviousBack reports whether, after a rollback, the kernel's networkd rules and their tables matched
	// what they were before the run.
	PreviousBack bool
	// PreviousDiff says what differs when PreviousBack is false.
	PreviousDiff []string
}

// Run applies p, whose rendered files are files. An error means the system could not be read or written; a
// failed verification is reported in the outcome.
func Run(ctx context.Context, p *plan.Plan, files []generator.File, opts Options, deps Deps) (Outcome, error) {
	r := &run{p: p, files: files, opts: opts, deps: deps, deadline: time.Now().Add(opts.Timeout)}
	return r.run(ctx)
}

type run struct {
	p        *plan.Plan
	files    []generator.File
	opts     Options
	deps     Deps
	deadline time.Time
	out      Outcome
}

func (r *run) logf(format string, args ...any) {
	if r.opts.Log != nil {
		fmt.Fprintf(r.opts.Log, format+"\n", args...)
	}
}

func (r *run) run(ctx context.Context) (Outcome, error) {
	changes, err := filesync.Compute(r.opts.Root, r.files, generator.IsOwned, generator.OwnedGlobs)
	if err != nil {
		return r.out, err
	}
	r.out.Changes = changes
	before, err := r.networkdState()
	if err != nil {
		return r.out, err
	}

	if len(changes) > 0 {
		if err := filesync.Apply(r.opts.Root, changes); err != nil {
			return r.out, err
		}
		for _, c := range changes {
			r.logf("%s %s", c.Kind, "/"+c.Path)
		}
		if err := r.reload(ctx, sysctlChanged(changes), changed(changes, generator.NetworkdConfPath)); err != nil {
			return r.out, r.rollbackAfter(ctx, changes, before, err)
		}
	} else {
		r.logf("no file changed; nothing reloaded")
	}
	if err := r.deleteStaleRules(); err != nil {
		return r.out, err
	}
	// After a reload networkd works asynchronously, so verification retries until the deadline; with nothing
	// reloaded there is nothing to wait for, and one look decides whether to repair.
	var res drift.Result
	if r.out.Reloaded {
		res, err = r.verifyUntilDeadline(ctx)
	} else {
		res, err = state.Verify(ctx, r.p, generator.ExpectedNetworkFiles(r.files), r.sources())
	}
	if err != nil {
		return r.out, err
	}
	if !res.OK() && !r.out.Reloaded {
		// Drift that no file change explains (a rule deleted by hand, a flushed table, an rp_filter changed):
		// have networkd apply the drifted links' configuration again, re-apply the sysctls, and look again.
		r.logf("%d problem(s) with the files unchanged; asking networkd to reconfigure the drifted links", len(res.Findings))
		if err := r.repair(ctx, res); err != nil {
			return r.out, err
		}
		if res, err = r.verifyUntilDeadline(ctx); err != nil {
			return r.out, err
		}
	}
	r.out.Result = res
	if res.OK() || len(changes) == 0 || r.opts.NoRollback {
		return r.out, nil
	}
	return r.out, r.rollback(ctx, changes, before, "verification failed")
}

// reload has networkd re-read its files and applies the sysctls when their file changed, then waits until the
// managed links are configured. networkd reads networkd.conf.d only when it starts, so when that drop-in changed
// networkd is restarted instead: a reload would reconfigure links while it still deletes foreign rules.
func (r *run) reload(ctx context.Context, sysctls, restart bool) error {
	restarted := false
	if restart && r.deps.RestartNetworkd != nil {
		if err := r.deps.RestartNetworkd(ctx); err != nil {
			r.logf("%s changed, but systemd-networkd could not be restarted (%v): restart it for ManageForeignRoutingPolicyRules=no to take effect", "/"+generator.NetworkdConfPath, err)
		} else {
			restarted = true
			r.logf("restarted systemd-networkd to read %s", "/"+generator.NetworkdConfPath)
		}
	}
	if !restarted {
		if err := r.deps.Networkd.Reload(ctx); err != nil {
			return err
		}
		r.logf("reloaded systemd-networkd")
	}
	r.out.Reloaded = true
	if sysctls {
		if err := r.applySysctls(ctx, r.p.Sysctls); err != nil {
			return err
		}
	}
	return r.waitLinks(ctx)
}

func (r *run) applySysctls(ctx context.Context, settings []plan.Sysctl) error {
	how, err := r.deps.Sysctl.Apply(ctx, settings)
	if err != nil {
		return fmt.Errorf("apply sysctls: %w", err)
	}
	if how != "" {
		r.logf("sysctl: %s", how)
	}
	return nil
}

func sysctlChanged(changes []filesync.Change) bool { return changed(changes, generator.SysctlPath) }

func changed(changes []filesync.Change, path string) bool {
	for _, c := range changes {
		if c.Path == path {
			return true
		}
	}
	return false
}

// waitLinks waits until networkd reports every managed link that exists configured, failed or unmanaged, or the
// deadline passes; verification then says what is wrong.
func (r *run) waitLinks(ctx context.Context) error {
	for {
		pending := []string{}
		for _, ifc := range r.p.Interfaces {
			index, ok, err := r.deps.Kernel.LinkIndex(ifc.Name)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			l, err := r.deps.Networkd.DescribeLink(ctx, index)
			if err != nil {
				return err
			}
			switch l.AdministrativeState {
			case "configured", "unmanaged", "linger":
			case "failed":
				r.logf("networkd failed to configure %s", ifc.Name)
			default:
				pending = append(pending, ifc.Name+" ("+l.AdministrativeState+")")
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(r.deadline) {
			r.logf("links still not configured at the deadline: %s", strings.Join(pending, ", "))
			return nil
		}
		if err := r.sleep(ctx); err != nil {
			return err
		}
	}
}

func (r *run) sleep(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.opts.Poll):
		return nil
	}
}

func (r *run) sources() state.Sources {
	return state.Sources{Kernel: r.deps.Kernel, Networkd: r.deps.Networkd, ProcSys: r.deps.ProcSys}
}

// verifyUntilDeadline verifies until the state matches or the deadline passes: networkd applies asynchronously.
func (r *run) verifyUntilDeadline(ctx context.Context) (drift.Result, error) {
	expected := generator.ExpectedNetworkFiles(r.files)
	for {
		res, err := state.Verify(ctx, r.p, expected, r.sources())
		if err != nil || res.OK() || time.Now().After(r.deadline) {
			return res, err
		}
		if err := r.sleep(ctx); err != nil {
			return res, err
		}
	}
}

// repair reconfigures the links with findings (every link when a finding concerns none, such as a cluster rule).
// In networkd 252 ReconfigureLink drops and re-adds the link's addresses, a brief disruption, so links that did
// not drift are left alone.
func (r *run) repair(ctx context.Context, res drift.Result) error {
	sysctls, all := false, false
	drifted := map[string]bool{}
	for _, f := range res.Findings {
		sysctls = sysctls || f.Kind == drift.RPFilterWrong
		if f.Kind == drift.RPFilterWrong {
			continue // the sysctls fix it; networkd has no part in it
		}
		drifted[f.Interface] = true
		all = all || f.Interface == ""
	}
	for _, ifc := range r.p.Interfaces {
		if !all && !drifted[ifc.Name] {
			continue
		}
		index, ok, err := r.deps.Kernel.LinkIndex(ifc.Name)
		if err != nil {
			return err
		}
		if ok {
			if err := r.deps.Networkd.ReconfigureLink(ctx, index); err != nil {
				return err
			}
			r.logf("reconfigured %s", ifc.Name)
		}
	}
	if sysctls {
		if err := r.applySysctls(ctx, r.p.Sysctls); err != nil {
			return err
		}
	}
	if err := r.waitLinks(ctx); err != nil {
		return err
	}
	return r.deleteStaleRules()
}

// staticProtocol is RTPROT_STATIC, the protocol networkd gives the rules it configures. A rule an administrator
// added by hand carries none, and is reported by verify but never deleted.
const staticProtocol = 4

// deleteStaleRules removes networkd-made rules at priorities symroute owns (its range, and its pinned values)
// that the plan no longer has. With ManageForeignRoutingPolicyRules=no, networkd forgets them across a restart.
func (r *run) deleteStaleRules() error {
	rules, err := r.deps.Kernel.Rules()
	if err != nil {
		return err
	}
	owned := func(prio uint32) bool {
		if r.p.Host.Priorities.Contains(prio) {
			return true
		}
		for _, ifc := range r.p.Interfaces {
			if ifc.Priority == prio {
				return true
			}
		}
		return false
	}
	want := map[string]bool{}
	for _, pr := range allRules(r.p) {
		want[drift.RuleString(pr.Priority, pr.From, pr.To, pr.Table)] = true
	}
	for _, kr := range rules {
		if kr.Protocol != staticProtocol || !owned(kr.Priority) || want[drift.RuleString(kr.Priority, kr.From, kr.To, kr.Table)] {
			continue
		}
		if err := r.deps.Kernel.DeleteRule(kr); err != nil {
			return err
		}
		r.logf("deleted stale rule %s", drift.RuleString(kr.Priority, kr.From, kr.To, kr.Table))
	}
	return nil
}

func allRules(p *plan.Plan) []plan.Rule {
	rules := append([]plan.Rule(nil), p.ClusterRules...)
	for _, ifc := range p.Interfaces {
		rules = append(rules, ifc.Rules...)
	}
	return rules
}

// networkdState is the part of the kernel networkd owns: its rules (protocol static) and the routes of the tables
// they point at. It is what must be back after a rollback.
func (r *run) networkdState() (map[string]bool, error) {
	rules, err := r.deps.Kernel.Rules()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	tables := map[uint32]bool{}
	for _, kr := range rules {
		if kr.Protocol == staticProtocol {
			out["rule "+drift.RuleString(kr.Priority, kr.From, kr.To, kr.Table)] = true
			if kr.Table != plan.MainTable {
				tables[kr.Table] = true
			}
		}
	}
	for t := range tables {
		routes, err := r.deps.Kernel.Routes(t)
		if err != nil {
			return nil, err
		}
		for _, rt := range routes {
			out["route "+drift.RouteString(rt.Destination, rt.Gateway, t)+fmt.Sprintf(" dev %d", rt.LinkIndex)] = true
		}
	}
	return out, nil
}

// rollbackAfter rolls back after a step failed outright, and returns that failure.
func (r *run) rollbackAfter(ctx context.Context, changes []filesync.Change, before map[string]bool, cause error) error {
	if r.opts.NoRollback {
		return cause
	}
	if err := r.rollback(ctx, changes, before, cause.Error()); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// rollback restores the files changes replaced, reloads, and checks the previous networkd state is back.
func (r *run) rollback(ctx context.Context, changes []filesync.Change, before map[string]bool, reason string) error {
	r.logf("%s; restoring the previous files", reason)
	var inverse []filesync.Change
	for _, c := range changes {
		switch c.Kind {
		case filesync.Create:
			inverse = append(inverse, filesync.Change{Kind: filesync.Remove, Path: c.Path, Old: c.New})
		case filesync.Update:
			inverse = append(inverse, filesync.Change{Kind: filesync.Update, Path: c.Path, Old: c.New, New: c.Old, Mode: c.OldMode, OldMode: c.Mode})
		case filesync.Remove:
			inverse = append(inverse, filesync.Change{Kind: filesync.Create, Path: c.Path, New: c.Old, Mode: c.OldMode})
		}
	}
	if err := filesync.Apply(r.opts.Root, inverse); err != nil {
		return fmt.Errorf("restore previous files: %w", err)
	}
	r.out.RolledBack = true
	for _, c := range inverse {
		r.logf("restored %s (%s)", "/"+c.Path, c.Kind)
	}
	if err := r.deps.Networkd.Reload(ctx); err != nil {
		return err
	}
	if sysctlChanged(changes) {
		var previous []plan.Sysctl
		for _, c := range inverse {
			if c.Path == generator.SysctlPath && c.Kind != filesync.Remove {
				previous = parseSysctls(c.New)
			}
		}
		if err := r.applySysctls(ctx, previous); err != nil {
			return err
		}
	}
	// The previous state gets a full timeout of its own.
	r.deadline = time.Now().Add(r.opts.Timeout)
	if err := r.waitLinks(ctx); err != nil {
		return err
	}
	for {
		now, err := r.networkdState()
		if err != nil {
			return err
		}
		r.out.PreviousDiff = diffSets(before, now)
		if len(r.out.PreviousDiff) == 0 {
			r.out.PreviousBack = true
			r.logf("previous state verified: networkd's rules and their tables are as before")
			return nil
		}
		if time.Now().After(r.deadline) {
			return nil
		}
		if err := r.sleep(ctx); err != nil {
			return err
		}
	}
}

func diffSets(before, now map[string]bool) []string {
	var out []string
	for k := range before {
		if !now[k] {
			out = append(out, "missing: "+k)
		}
	}
	for k := range now {
		if !before[k] {
			out = append(out, "extra: "+k)
		}
	}
	return out
}

// parseSysctls reads symroute's own sysctl file back into settings, for a rollback without systemd.
func parseSysctls(data []byte) []plan.Sysctl {
	var out []plan.Sysctl
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out = append(out, plan.Sysctl{Key: strings.TrimSpace(k), Value: strings.TrimSpace(v)})
		}
	}
	return out
}
