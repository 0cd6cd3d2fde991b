// Package apply changes a host as one recorded transaction: it says what a change would remove and refuses to
// cut a live connection, records the exact inverse before the first file changes, writes the files, has networkd
// take them up (restarting it where networkd.conf.d changed), applies symroute's own sysctl keys, waits for
// networkd's word that each changed link is configured again, and verifies. When verification fails, or the run
// is interrupted, it carries out the inverse and checks that every rule and route, foreign ones included, is as
// it was. A run that dies anyway leaves the record pending, and the next run undoes it first.
//
// Everything outside the process is behind the small interfaces in Deps, so the engine runs against fakes in
// tests and against the kernel, networkd and systemd in production.
package apply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/edges/filesync"
	"github.com/symroute/symroute/internal/edges/networkd"
	"github.com/symroute/symroute/internal/edges/recordstore"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/edges/sockets"
	"github.com/symroute/symroute/internal/orchestration/state"
)

// Kernel is what the engine reads from and deletes in the kernel; *kernel.Reader implements it.
type Kernel interface {
	state.Kernel
	RoutesOn(index int) ([]routing.Route, error)
	Addresses(index int) ([]routing.Address, error)
	DeleteRule(routing.Rule) error
	AddRule(routing.Rule) error
	AddAddress(index int, a routing.Address) error
	AddMainRoute(index int, r routing.Route) error
}

// Networkd is what the engine asks of systemd-networkd; *networkd.Client implements it.
type Networkd interface {
	Reload(ctx context.Context) error
	ReconfigureLink(ctx context.Context, ifindex int) error
	DescribeLink(ctx context.Context, ifindex int) (networkd.Link, error)
	DescribeLinks(ctx context.Context) ([]networkd.Link, error)
	WatchLinks() (<-chan networkd.LinkEvent, func(), error)
}

// Sysctl reads and sets kernel parameters; sysctl.Applier implements it.
type Sysctl interface {
	Read(key string) (value string, exists bool, err error)
	Write(key, value string) error
	Apply(ctx context.Context, settings []plan.Sysctl) (string, error)
}

// Deps are the engine's edges.
type Deps struct {
	Kernel   Kernel
	Networkd Networkd
	Sysctl   Sysctl
	// Connmark is nftables, for track_connections; nil where nftables cannot be reached (a run that needs it
	// then fails before changing anything).
	Connmark Connmark
	// RestartNetworkd restarts systemd-networkd through the systemd manager; an error wrapping
	// systemd.ErrNoManager says no manager answers.
	RestartNetworkd func(ctx context.Context) error
	// ReloadManager has systemd read its unit files again, after symroute's unit changed; an error wrapping
	// systemd.ErrNoManager says no manager answers. Nil where there is no manager to tell.
	ReloadManager func(ctx context.Context) error
	// RestartConnmark restarts symroute-connmark.service, so that systemd counts it active and restarts it with
	// nftables.service; nil where there is no manager to ask.
	RestartConnmark func(ctx context.Context) error
	// Unit asks systemd to "restart" or "stop" a unit of symroute's and waits for the job; nil where there is no
	// manager to ask.
	Unit func(ctx context.Context, name, action string) error
	// ManagerAvailable reports whether a systemd manager answers, asked before a change that needs a restart.
	ManagerAvailable func(ctx context.Context) error
	// NetworkdVersion returns networkd's major version. With thorough false it may give up where the answer
	// is not cheap (no systemd manager to ask): the version then only feeds a warning.
	NetworkdVersion func(ctx context.Context, thorough bool) (int, error)
	// Connections lists the established TCP connections on the given local addresses.
	Connections func([]netip.Addr) ([]sockets.Conn, error)
	// Self names this process in the record.
	Self record.Process
	// Alive reports whether a recorded process still runs (a try's watcher).
	Alive func(record.Process) bool
}

// Options tune a run.
type Options struct {
	Root *rootfs.Root
	// Timeout bounds waiting for networkd and for verification, and, separately, the rollback.
	Timeout time.Duration
	// NoRollback keeps the new state when verification fails.
	NoRollback bool
	// Force applies a change that removes an address an established connection uses.
	Force bool
	// Strict refuses what is otherwise a warning (networkd older than 249 where no component is declared).
	Strict bool
	// Poll is how often networkd and the kernel are looked at while waiting, besides networkd's signals.
	Poll time.Duration
	// Log receives one line per step.
	Log io.Writer
	// RunningSystem says Root is the running system's root though it is not "/" here: the node agent's container
	// sees the host's files under /host. symroute's units are then started and stopped through systemd as on "/";
	// under any other root (a test's tree, an image's) they are left to the next boot.
	RunningSystem bool
}

// onRunningSystem says whether the root is the system that is running, whose systemd runs symroute's units now.
func (e *Engine) onRunningSystem() bool {
	return e.opts.Root.Path == "/" || e.opts.RunningSystem
}

// Engine runs transactions under one root. The caller holds the root's lock for the engine's whole life.
type Engine struct {
	opts Options
	deps Deps
	rec  *record.Record
	// writeHook stands in for filesync.Apply in tests.
	writeHook func([]filesync.Change) error
	// quiet is defaultQuiet; a test that must see networkd's own word sets it out of reach.
	quiet time.Duration
}

// New loads the record under opts.Root.
func New(opts Options, deps Deps) (*Engine, error) {
	if opts.Poll == 0 {
		opts.Poll = 20 * time.Millisecond
	}
	rec, err := recordstore.Load(opts.Root)
	if err != nil {
		return nil, err
	}
	return &Engine{opts: opts, deps: deps, rec: rec, quiet: defaultQuiet}, nil
}

// Record returns the record as the engine holds it.
func (e *Engine) Record() *record.Record { return e.rec }

func (e *Engine) logf(format string, args ...any) {
	if e.opts.Log != nil {
		fmt.Fprintf(e.opts.Log, format+"\n", args...)
	}
}

func (e *Engine) save() error {
	if err := recordstore.Save(e.opts.Root, e.rec); err != nil {
		return fmt.Errorf("write the record: %w", err)
	}
	return nil
}

// ErrTryPending is returned while a try waits for confirmation: only confirm, or the try's own rollback, may
// change the host until then.
var ErrTryPending = errors.New("a symroute try is waiting for confirmation")

// ErrRefused is returned when a change would cut established connections and Force is not set; nothing changed.
var ErrRefused = errors.New("refused")

// Recover undoes a transaction whose process died, so every run starts from a state symroute knows. A try
// whose watcher still runs is not undone: ErrTryPending says so, and when.
func (e *Engine) Recover(ctx context.Context) error {
	tx := e.rec.Pending
	if tx == nil {
		return nil
	}
	if err := e.watched(tx); err != nil {
		return err
	}
	e.logf("a symroute %s started %s by pid %d did not finish; undoing it first", tx.Op, tx.Started.Format(time.DateTime), tx.Process.PID)
	out := &Outcome{}
	if err := e.rollback(ctx, tx, nil, false, out); err != nil {
		return fmt.Errorf("undo the unfinished %s: %w", tx.Op, err)
	}
	for _, d := range out.PreviousDiff {
		e.logf("differs from before the %s: %s", tx.Op, d)
	}
	return nil
}

// RecoverFiles undoes a pending transaction before networkd starts, at boot: a try nobody confirmed before the
// reboot, or a run the power cut. It puts every file back as it was and the keys the transaction set back to
// their values (systemd-sysctl set them from the transaction's file), and asks nothing of networkd, which reads
// the files when it starts. The rules the transaction made died with the previous boot.
func (e *Engine) RecoverFiles() error {
	tx := e.rec.Pending
	if tx == nil {
		return nil
	}
	if err := e.watched(tx); err != nil {
		return err
	}
	e.logf("a symroute %s started %s was not finished or confirmed before this boot; undoing it before networkd starts", tx.Op, tx.Started.Format(time.DateTime))
	for _, ph := range undoPhases(tx, nil, false) {
		if err := e.writeFiles(ph.changes); err != nil {
			return fmt.Errorf("undo the unfinished %s: %w", tx.Op, err)
		}
		for _, c := range ph.changes {
			e.logf("put back /%s", c.Path)
		}
	}
	if e.deps.Sysctl == nil {
		e.logf("note: offline: the sysctl values stay as they are; systemd-sysctl sets them from the restored files at the next boot")
	} else if err := e.undoSysctls(tx); err != nil {
		e.logf("note: %v", err)
	}
	// symroute-connmark.service runs after this, and only where the file is: systemd queued it, or not, from the
	// links it read before the files were put back. The table follows the restored file here, in case it did not.
	if err := e.undoConnmark(context.Background(), tx); err != nil {
		e.logf("note: %v", err)
	}
	e.rec.Pending = nil
	return e.save()
}

// watched says, with ErrTryPending, that tx is a try whose watcher still runs: only confirm, or the watcher,
// settles it.
func (e *Engine) watched(tx *record.Transaction) error {
	if tx.Op == record.OpTry && tx.Watcher != nil && e.deps.Alive != nil && e.deps.Alive(*tx.Watcher) && time.Now().Before(tx.Deadline) {
		return fmt.Errorf("%w until %s (watcher pid %d): run symroute confirm to keep it, or wait for it to roll back",
			ErrTryPending, tx.Deadline.Local().Format(time.TimeOnly), tx.Watcher.PID)
	}
	return nil
}

// Confirm keeps a verified try (the one with id, when id is given): its target becomes what is applied. It
// returns the watcher to stop.
func (e *Engine) Confirm(id string) (*record.Process, error) {
	tx := e.rec.Pending
	if tx == nil || tx.Op != record.OpTry || id != "" && tx.ID != id {
		return nil, errors.New("no symroute try is waiting for confirmation")
	}
	if !tx.Verified {
		return nil, errors.New("the pending try has not verified yet; wait for it to finish")
	}
	target := tx.Target
	e.rec.Applied, e.rec.Pending = &target, nil
	if err := e.save(); err != nil {
		return nil, err
	}
	e.logf("confirmed: the try's state is kept")
	return tx.Watcher, nil
}

// RollbackPending undoes the pending transaction now: a try nobody confirmed, or one whose session ended.
func (e *Engine) RollbackPending(ctx context.Context, id, reason string) (Outcome, error) {
	var out Outcome
	tx := e.rec.Pending
	if tx == nil || id != "" && tx.ID != id {
		return out, nil // confirmed, or already rolled back
	}
	e.logf("%s; rolling back", reason)
	return out, e.rollback(ctx, tx, nil, false, &out)
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
