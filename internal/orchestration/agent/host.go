package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/fleet"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/kernel"
	"github.com/symroute/symroute/internal/edges/lock"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/orchestration/apply"
	"github.com/symroute/symroute/internal/orchestration/live"
	"github.com/symroute/symroute/internal/orchestration/state"
)

// Machine is the Host of the machine the agent runs on: the apply engine as symroute try runs it, connected to the
// host as the CLI connects it (internal/orchestration/live), with the agent's own checks standing in for the
// person who would run symroute confirm.
//
// The agent starts no watcher process, as try does: it holds the root's lock from the try to its confirmation or
// rollback, and its checks end at the try's deadline. Where the agent dies in between, the try stays pending
// without a watcher, and the next changing run (the agent restarted by its DaemonSet, any symroute command) undoes
// it first; after a reboot, symroute-recover.service does.
type Machine struct {
	// Root is the system's root, "/" when empty; a test's tree, or the host's root mounted into the agent's
	// container, otherwise.
	Root string
	// ProcSys is the host's sysctl tree, /proc/sys when empty: a container's own /proc/sys is read-only.
	ProcSys string
	// APIReachable reports whether the API server still answers: the change must not cut the node off.
	APIReachable func(ctx context.Context) error
	// Gateway checks that gw, on link, answers from the address from; PingGateway when nil.
	Gateway func(ctx context.Context, link string, from, gw netip.Addr) error
	// Wait bounds waiting for networkd and verification (try's --wait); 30 s when zero.
	Wait time.Duration
	// Checks bounds the agent's checks after the try verified; 30 s when zero. The try's deadline is Wait plus
	// Checks away, so a try nobody settles rolls back soon after.
	Checks time.Duration
	// Logf receives the engine's lines; nothing when nil.
	Logf func(format string, args ...any)
}

var _ Host = (*Machine)(nil)

func (m *Machine) root() string {
	if m.Root == "" {
		return "/"
	}
	return m.Root
}

func orDefault(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

func (m *Machine) logf(format string, args ...any) {
	if m.Logf != nil {
		m.Logf(format, args...)
	}
}

// logWriter hands the engine's lines to Logf.
type logWriter struct{ m *Machine }

func (w logWriter) Write(p []byte) (int, error) {
	w.m.logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Addresses are the global addresses of this network namespace's links, by link name, as discover takes them. An error is a kernel that could not be asked (a dump interrupted time
// after time on a busy node): a read that failed, not a node whose links lack an address.
func (m *Machine) Addresses() (map[string][]netip.Prefix, error) {
	reader, err := kernel.NewReader(nil)
	if err != nil {
		return nil, fmt.Errorf("read the links' addresses: %w", err)
	}
	defer reader.Close()
	// Two dumps, the links and every address: not the inventory discover reads, whose routes and rules the
	// addresses do not need.
	links, err := reader.Links()
	if err != nil {
		return nil, fmt.Errorf("read the links' addresses: %w", err)
	}
	byIndex, err := reader.AllAddresses()
	if err != nil {
		return nil, fmt.Errorf("read the links' addresses: %w", err)
	}
	out := map[string][]netip.Prefix{}
	for _, l := range links {
		for _, a := range byIndex[l.Index] {
			if a.Prefix.Addr().IsGlobalUnicast() {
				out[l.Name] = append(out[l.Name], a.Prefix)
			}
		}
	}
	return out, nil
}

// session is the locked root with the engine on it, as the CLI's changing commands open it: the lock, the live
// deps, and an unfinished transaction undone first.
func (m *Machine) session(ctx context.Context, force bool) (e *apply.Engine, r *rootfs.Root, end func(), err error) {
	if r, err = rootfs.Open(m.root()); err != nil {
		return nil, nil, nil, err
	}
	release, err := live.Lock(ctx, r, lock.DefaultWait, func(holder string) {
		m.logf("waiting for %s to finish", holder)
	}, func(path string) {
		m.logf("removed %s, left by an interrupted run", path)
	})
	if err != nil {
		r.Close()
		return nil, nil, nil, err
	}
	deps, closeDeps, err := live.Deps(ctx, r, m.root(), m.ProcSys)
	if err != nil {
		release()
		r.Close()
		return nil, nil, nil, err
	}
	end = func() { closeDeps(); release(); r.Close() }
	// The agent's root, wherever it is mounted, is the host it runs on: symroute's units start now, not at the
	// next boot.
	e, err = apply.New(apply.Options{Root: r, Timeout: orDefault(m.Wait, 30*time.Second), Force: force, Log: logWriter{m}, RunningSystem: true}, deps)
	if err == nil {
		err = e.Recover(ctx)
	}
	if err != nil {
		end()
		return nil, nil, nil, err
	}
	return e, r, end, nil
}

// Apply applies the policy's description to this node as symroute try does, then runs the agent's checks (every
// described gateway answers from its interface's address, the API server is still reachable) and confirms the
// try only when they pass; otherwise it rolls the try back, with the engine's exact inverse.
func (m *Machine) Apply(ctx context.Context, desc []byte, settings fleet.Checks) (Outcome, error) {
	p, refused, err := m.plan(desc)
	if err != nil || refused != "" {
		return Outcome{Message: "nothing was changed: " + refused}, err
	}
	// try goes ahead over the connections apply would refuse to cut, since it rolls back unless its checks pass;
	// the agent's try does the same.
	e, r, end, err := m.session(ctx, true)
	if err != nil {
		return Outcome{}, err
	}
	defer end()
	files, refused, err := m.files(p, r)
	if err != nil || refused != "" {
		return Outcome{Message: "nothing was changed: " + refused}, err
	}
	wait, checks := orDefault(m.Wait, 30*time.Second), orDefault(settings.Timeout, orDefault(m.Checks, 30*time.Second))
	// The deadline outlasts networkd's take-up and verification (Wait) and the checks after them (Checks).
	req := apply.Request{Plan: p, Files: files, Description: "RoutingPolicy", Op: record.OpTry, Deadline: time.Now().Add(wait + checks)}
	return settle(ctx, e, req, m.checks(p, settings.SkipGateways))
}

// plan is the policy's description on this node, with the addresses its links have; refused says why there is
// none. An error is a failure to read the links.
func (m *Machine) plan(desc []byte) (p *plan.Plan, refused string, err error) {
	addrs, err := m.Addresses()
	if err != nil {
		return nil, "", err
	}
	host, rep := description.ParseWith(desc, description.Options{FromNode: true, Node: addrs})
	if rep.HasErrors(false) {
		return nil, "the description does not hold on this node:\n" + errorLines(rep), nil
	}
	p, planRep := plan.Build(host)
	if planRep.HasErrors(false) {
		return nil, "the description does not hold on this node:\n" + errorLines(planRep), nil
	}
	return p, "", nil
}

// files are symroute's files for p on root r; refused says why they cannot be made.
func (m *Machine) files(p *plan.Plan, r *rootfs.Root) (files []fileset.File, refused string, err error) {
	files, rep, err := generator.Generate(p, generator.Options{Source: "RoutingPolicy", Root: r.ReadFS(), Links: live.Links(p)})
	if err != nil {
		return nil, "", err
	}
	if rep.HasErrors(false) {
		return nil, "the description does not fit this node's files:\n" + errorLines(rep), nil
	}
	return files, "", nil
}

// Verify compares this node's routing with the policy's description, as symroute verify does: the rules, the
// tables, the kernel's answer for a reply from every address, rp_filter and networkd's files. It changes nothing
// and takes no lock. An error means the live state could not be read, or the description no longer holds here
// (its links lost their addresses, say).
func (m *Machine) Verify(ctx context.Context, desc []byte) (drift.Result, error) {
	p, refused, err := m.plan(desc)
	if err != nil {
		return drift.Result{}, err
	}
	if refused != "" {
		return drift.Result{}, notHolding(refused)
	}
	r, err := rootfs.Open(m.root())
	if err != nil {
		return drift.Result{}, err
	}
	defer r.Close()
	files, refused, err := m.files(p, r)
	if err == nil && refused != "" {
		err = notHolding(refused)
	}
	if err != nil {
		return drift.Result{}, err
	}
	src, closeSrc, err := live.Sources(ctx, m.ProcSys)
	if err != nil {
		return drift.Result{}, err
	}
	defer closeSrc()
	recorded, err := live.Recorded(r)
	if err != nil {
		m.logf("verify: %v", err)
	}
	return state.Verify(ctx, p, drift.Expect{NetworkFiles: generator.ExpectedNetworkFiles(files), Recorded: recorded}, src)
}

// check is one of the agent's checks after the try verified.
type check struct {
	name string
	run  func(ctx context.Context) error
}

// checks are the gateway of every described interface but those skipped, each from the interface's first address
// of its family, and the API server.
func (m *Machine) checks(p *plan.Plan, skipGateways []string) []check {
	gateway := m.Gateway
	if gateway == nil {
		gateway = PingGateway
	}
	var out []check
	for _, ifc := range p.Interfaces {
		if slices.Contains(skipGateways, ifc.Name) {
			continue
		}
		for _, gw := range []netip.Addr{ifc.Gateway, ifc.Gateway6} {
			if !gw.IsValid() {
				continue
			}
			from, ok := firstOfFamily(ifc.Addresses, gw.Is6())
			if !ok {
				continue // dhcp4 or accept_ra: networkd's lease, not the description, gives the address
			}
			out = append(out, check{fmt.Sprintf("%s's gateway %s (from %s)", ifc.Name, gw, from),
				func(ctx context.Context) error { return gateway(ctx, ifc.Name, from, gw) }})
		}
	}
	api := m.APIReachable
	if api == nil {
		api = func(context.Context) error { return errors.New("no check of the API server is set") }
	}
	return append(out, check{"the API server", api})
}

func firstOfFamily(addrs []netip.Prefix, v6 bool) (netip.Addr, bool) {
	for _, a := range addrs {
		if a.Addr().Is6() == v6 {
			return a.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// tryEngine is what settle uses of *apply.Engine.
type tryEngine interface {
	Apply(ctx context.Context, req apply.Request) (apply.Outcome, error)
	Confirm(id string) (*record.Process, error)
	RollbackPending(ctx context.Context, id, reason string) (apply.Outcome, error)
	Record() *record.Record
}

// settle runs the try, then the checks until the try's deadline, and confirms it or rolls it back.
func settle(ctx context.Context, e tryEngine, req apply.Request, checks []check) (Outcome, error) {
	out, err := e.Apply(ctx, req)
	switch {
	case errors.Is(err, apply.ErrRefused):
		return Outcome{Message: err.Error()}, nil
	case err != nil && out.RolledBack:
		return Outcome{Findings: out.Result.Findings, Message: fmt.Sprintf("%v; %s", err, rolledBack(out))}, nil
	case err != nil:
		return Outcome{}, err
	case !out.Verified:
		return Outcome{Findings: out.Result.Findings, Message: "verification failed; " + rolledBack(out)}, nil
	}
	id := e.Record().Pending.ID
	cctx, cancel := context.WithDeadline(ctx, req.Deadline)
	defer cancel()
	// The checks run side by side, each until the deadline: one after another, a silent gateway would spend the
	// whole deadline and every check after it would fail too, and be named as failed. The first to fail stops
	// the others, so the rollback comes at once; those it stopped are not named.
	running, stop := context.WithCancel(cctx)
	defer stop()
	errs := make([]error, len(checks))
	var mu sync.Mutex
	first := -1
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			err := c.run(running)
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if first >= 0 && running.Err() != nil && cctx.Err() == nil {
				return // stopped by the first failure
			}
			if first < 0 {
				first = i
				stop()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	var failed []string
	for i, c := range checks {
		if errs[i] != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c.name, errs[i]))
		}
	}
	if len(failed) == 0 {
		if _, err := e.Confirm(id); err == nil {
			return Outcome{Verified: true, Findings: out.Result.Findings, Message: "verified, and every gateway and the API server answered; confirmed"}, nil
		} else {
			failed = append(failed, fmt.Sprintf("confirm: %v", err))
		}
	}
	reason := "the agent's checks failed: " + strings.Join(failed, "; ")
	// The rollback must finish even when the agent is being stopped: it is what leaves the node as it was.
	back, err := e.RollbackPending(context.WithoutCancel(ctx), id, reason)
	if err != nil {
		return Outcome{}, fmt.Errorf("%s; the rollback failed: %w", reason, err)
	}
	back.RolledBack = true
	return Outcome{Findings: out.Result.Findings, Message: reason + "; " + rolledBack(back)}, nil
}

// rolledBack says what became of the node after a try that did not hold.
func rolledBack(out apply.Outcome) string {
	switch {
	case !out.RolledBack:
		return "nothing was changed"
	case !out.PreviousChecked:
		return "rolled back: symroute's files and sysctl values are as they were"
	case out.PreviousBack:
		return "rolled back and checked: symroute's files, its sysctl values, every rule and every route it could touch are as they were"
	default:
		return "rolled back, but the routing differs from before (another program may have changed it meanwhile): " + strings.Join(out.PreviousDiff, "; ")
	}
}

// Remove removes symroute's configuration as symroute remove (without --all) does: a link whose addresses come
// from symroute's own .network file keeps that file, stripped of the routing. --all would delete it and take the
// link's addresses with it, which can cut the node off its cluster; with nobody to move the addresses to a file of
// their own, the agent leaves them, and says so.
//
// Unlike remove without --force, it goes ahead over established connections: on a node there always is one on the
// node's addresses (the kubelet's to the API server), so a refusal would never lift, and what the removal returns
// to is the node's routing from before symroute, which the operator chose by no longer selecting the node.
func (m *Machine) Remove(ctx context.Context) error {
	e, _, end, err := m.session(ctx, true)
	if err != nil {
		return err
	}
	defer end()
	out, rm, err := e.Remove(ctx, false)
	if err != nil {
		return fmt.Errorf("%w; %s", err, rolledBack(out))
	}
	for link, addrs := range rm.Kept {
		m.logf("kept %s's own .network file, stripped of symroute's routing: it gives %s its addresses %v", link, link, addrs)
	}
	if len(rm.Remaining) > 0 {
		return fmt.Errorf("still present after the removal: %s", strings.Join(rm.Remaining, "; "))
	}
	return nil
}
