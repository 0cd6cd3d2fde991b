package cli

import (
	"github.com/spf13/pflag"

	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/lock"
	"github.com/symroute/symroute/internal/edges/nftables"
	"github.com/symroute/symroute/internal/edges/recordstore"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/edges/sysctl"
	"github.com/symroute/symroute/internal/orchestration/apply"
)

// session is a locked root with the engine on it, for the commands that change the host.
type session struct {
	root    *rootfs.Root
	engine  *apply.Engine
	release func()
	close   func()
}

func (s *session) end() {
	if s.close != nil {
		s.close()
	}
	if s.release != nil {
		s.release()
	}
	if s.root != nil {
		s.root.Close()
	}
}

// open locks the root, connects the engine to the host, and undoes a transaction an earlier run left unfinished.
// ok is false, after saying why, with the status to exit with.
func open(ctx context.Context, cmd, rootPath string, opts apply.Options, recover bool, progress, stderr io.Writer) (s *session, status int, ok bool) {
	s = &session{}
	var err error
	if s.root, err = rootfs.Open(rootPath); err != nil {
		eprintf(stderr, "symroute %s: %v; nothing was changed\n", cmd, err)
		return s, ExitSystem, false
	}
	if s.release, ok = lockRoot(ctx, cmd, s.root, lock.DefaultWait, progress, stderr); !ok {
		return s, ExitSystem, false
	}
	deps, closeDeps, err := liveDeps(ctx, s.root, rootPath, "")
	if err != nil {
		eprintf(stderr, "symroute %s: %v\n", cmd, err)
		return s, ExitSystem, false
	}
	s.close = closeDeps
	opts.Root = s.root
	opts.Log = lineWriter{progress}
	if s.engine, err = apply.New(opts, deps); err != nil {
		eprintf(stderr, "symroute %s: %v\n", cmd, err)
		return s, ExitSystem, false
	}
	if !recover {
		return s, ExitOK, true
	}
	if err := s.engine.Recover(ctx); err != nil {
		eprintf(stderr, "symroute %s: %v\n", cmd, err)
		if errors.Is(err, apply.ErrTryPending) {
			return s, ExitFailed, false
		}
		return s, ExitSystem, false
	}
	return s, ExitOK, true
}

// lineWriter prints the engine's lines with control bytes escaped: they carry names from the kernel.
type lineWriter struct{ w io.Writer }

func (l lineWriter) Write(p []byte) (int, error) {
	eprintf(l.w, "%s", p)
	return len(p), nil
}

// signalContext is cancelled by SIGINT, SIGTERM or SIGHUP (the terminal closed, often because the change cut
// the session). The engine answers the cancellation by rolling back, in a context of its own; until that is
// done, further signals are caught and only said to be ignored.
func signalContext(cmd string, stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		first := true
		for {
			select {
			case sig := <-sigs:
				if first {
					eprintf(stderr, "symroute %s: %v; rolling back\n", cmd, sig)
					cancel()
					first = false
				} else {
					eprintf(stderr, "symroute %s: %v again; still rolling back, which must finish to leave the host as it was\n", cmd, sig)
				}
			case <-done:
				return
			}
		}
	}()
	return ctx, func() { signal.Stop(sigs); close(done); cancel() }
}

var applyCommand = &command{
	name:    "apply",
	args:    "[FILE]",
	arg:     files,
	summary: "generate, reload networkd over D-Bus, apply sysctls, verify; roll back if verification fails",
	long: "One recorded transaction: says what the change removes and refuses when an established TCP connection " +
		"uses it (unless --force), writes the files, has systemd-networkd take them up (restarting it when the " +
		"networkd.conf.d drop-in changes), applies symroute's sysctl keys, waits for the links and verifies. When " +
		"anything fails, or on SIGINT, SIGTERM or SIGHUP, it carries out the exact inverse and exits 1.",
	examples: []example{
		{"Apply " + DefaultDescription, "symroute apply"},
		{"Give a slow host longer to take the change up", "symroute apply --timeout 2m"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var c common
		var timeout time.Duration
		var noRollback, force bool
		descriptionFlags(fs, &c, "/")
		quietFlag(fs, &c.quiet)
		fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for networkd and for verification before rolling back")
		describeValue(fs, "timeout", "DURATION", nothing)
		fs.BoolVar(&noRollback, "no-rollback", false, "keep the new state when verification fails")
		fs.BoolVar(&force, "force", false, "apply even when an established connection uses an address the change removes")
		return readsDescription(&c, func(in input) int { return applyRun(c, timeout, noRollback, force, in) })
	},
}

func applyRun(c common, timeout time.Duration, noRollback, force bool, in input) int {
	stdout, stderr := in.stdout, in.stderr
	c.host, c.askNetworkd = true, true
	l, files, status, ok := pipeline(c, stderr)
	if !ok {
		return status
	}
	ctx, stop := signalContext("apply", stderr)
	defer stop()
	progress := progressTo(stdout, c.quiet)
	s, status, ok := open(ctx, "apply", c.root, apply.Options{Timeout: timeout, NoRollback: noRollback, Force: force, Strict: c.strict}, true, progress, stderr)
	defer s.end()
	if !ok {
		return status
	}
	out, err := s.engine.Apply(ctx, apply.Request{Plan: l.plan, Files: files, Description: l.source, Op: record.OpApply})
	return outcome("apply", c.shown(), timeout, out, err, stdout, progressTo(stderr, c.quiet), stderr)
}

// outcome prints an apply's or a try's outcome and returns the exit status; verification's notes go to notes.
func outcome(cmd, config string, timeout time.Duration, out apply.Outcome, err error, stdout, notes, stderr io.Writer) int {
	switch {
	case errors.Is(err, apply.ErrRefused):
		eprintf(stderr, "symroute %s: %v\n", cmd, err)
		return ExitFailed
	case out.Interrupted:
		eprintf(stderr, "symroute %s: interrupted; %s\n", cmd, rolledBack(cmd, out))
		return ExitFailed
	case err != nil:
		eprintf(stderr, "symroute %s: %v\n", cmd, err)
		if out.RolledBack {
			eprintf(stderr, "symroute %s: %s\n", cmd, rolledBack(cmd, out))
		}
		return ExitSystem
	}
	printResult(stdout, notes, config, out.Result)
	if out.Verified {
		return ExitOK
	}
	if out.RolledBack {
		eprintf(stderr, "symroute %s: verification failed within %v; %s\n", cmd, timeout, rolledBack(cmd, out))
	} else {
		eprintf(stderr, "symroute %s: verification failed within %v\n", cmd, timeout)
	}
	return ExitFailed
}

// rolledBack says what became of the host after cmd (apply, try or remove) did not finish.
func rolledBack(cmd string, out apply.Outcome) string {
	switch {
	case out.Kept:
		return "the new state is kept, as --no-rollback asks"
	case !out.RolledBack:
		return "nothing was changed"
	case !out.PreviousChecked:
		return fmt.Sprintf("rolled back: symroute's files and sysctl values are as they were before the %s", cmd)
	case out.PreviousBack:
		return fmt.Sprintf("rolled back and checked: symroute's files, its sysctl values, every rule, and every route on its links and in its tables are as they were before the %s", cmd)
	default:
		return fmt.Sprintf("rolled back: symroute's files and sysctl values are as they were before the %s, but the routing differs from before (another program may have changed it meanwhile):\n  %s",
			cmd, strings.Join(out.PreviousDiff, "\n  "))
	}
}

var tryCommand = &command{
	name:    "try",
	args:    "[FILE]",
	arg:     files,
	summary: "apply, then roll back unless confirmed within --timeout (default 120s)",
	long: "Applies as apply does, going ahead over connections apply would refuse to cut, and keeps the change only " +
		"when confirmed: press Enter in its session, or run symroute confirm from another one, the proof that you " +
		"can still reach the host. Otherwise the change is rolled back: at the deadline, at once when try dies " +
		"before the change verified or its terminal closes, and at the next boot through symroute-recover.service.",
	examples: []example{
		{"Try a change over SSH, and confirm it from a second session", "symroute try --timeout 5m"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var c common
		var window, wait time.Duration
		descriptionFlags(fs, &c, "/")
		quietFlag(fs, &c.quiet)
		fs.DurationVar(&window, "timeout", 120*time.Second, "how long to wait for confirmation before rolling back")
		describeValue(fs, "timeout", "DURATION", nothing)
		fs.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for networkd and for verification")
		describeValue(fs, "wait", "DURATION", nothing)
		return readsDescription(&c, func(in input) int { return tryRun(c, window, wait, in) })
	},
}

func tryRun(c common, window, wait time.Duration, in input) int {
	stdout, stderr := in.stdout, in.stderr
	c.host, c.askNetworkd = true, true
	l, files, status, ok := pipeline(c, stderr)
	if !ok {
		return status
	}
	ctx, stop := signalContext("try", stderr)
	defer stop()
	// try goes ahead over the connections apply would refuse to cut: that is what it is for. It names them, and
	// rolls back unless confirmed from a session that still works.
	progress := progressTo(stdout, c.quiet)
	s, status, ok := open(ctx, "try", c.root, apply.Options{Timeout: wait, Force: true, Strict: c.strict}, true, progress, stderr)
	if !ok {
		s.end()
		return status
	}
	deadline := time.Now().Add(window)
	var watcher *record.Process
	req := apply.Request{Plan: l.plan, Files: files, Description: l.source, Op: record.OpTry, Deadline: deadline,
		Watch: func(tx *record.Transaction) (record.Process, error) {
			p, err := startWatcher(c.root, tx.ID, tx.Deadline)
			watcher = &p
			return p, err
		}}
	out, err := s.engine.Apply(ctx, req)
	if err != nil || !out.Verified {
		// The run undid itself (or nothing changed); its watcher finds no try pending and ends.
		s.end()
		stopProcess(watcher)
		return outcome("try", c.shown(), wait, out, err, stdout, progressTo(stderr, c.quiet), stderr)
	}
	printResult(stdout, progressTo(stderr, c.quiet), c.shown(), out.Result)
	id := s.engine.Record().Pending.ID
	// Let confirm, and the watcher, take the lock.
	s.end()

	fmt.Fprintf(stdout, "symroute try: the new state is live and verified. Keep it within %v: ", window.Round(time.Second))
	_, notTTY := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	interactive := notTTY == nil
	if interactive {
		fmt.Fprintf(stdout, "press Enter here, or run symroute confirm from another shell.\n")
	} else {
		fmt.Fprintf(stdout, "run symroute confirm from another shell.\n")
	}
	fmt.Fprintf(stdout, "Otherwise it is rolled back at %s; at once if this session is closed.\n", deadline.Format(time.TimeOnly))
	return awaitConfirmation(ctx, c.root, id, interactive, progress, stdout, stderr)
}

// awaitConfirmation waits until the try is confirmed (Enter here, or symroute confirm elsewhere) or rolled back
// (by its watcher at the deadline, or here on a signal).
func awaitConfirmation(ctx context.Context, rootPath, id string, interactive bool, progress, stdout, stderr io.Writer) int {
	enter := make(chan struct{}, 1)
	if interactive {
		go func() {
			bufio.NewReader(os.Stdin).ReadString('\n')
			enter <- struct{}{}
		}()
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-enter:
			if status := confirm(rootPath, id, progress, stderr); status != ExitOK {
				return status
			}
			fmt.Fprintln(stdout, "symroute try: confirmed; the new state is kept")
			return ExitOK
		case <-ctx.Done():
			return rollbackTry(rootPath, id, "interrupted before confirmation", progress, stderr)
		case <-tick.C:
			switch st := tryState(rootPath, id); st {
			case "confirmed":
				fmt.Fprintln(stdout, "symroute try: confirmed; the new state is kept")
				return ExitOK
			case "rolled back":
				eprintf(stderr, "symroute try: not confirmed in time; rolled back to the state before the try\n")
				return ExitFailed
			}
		}
	}
}

// tryState reads, without the lock, whether try id is still pending, was confirmed, or was rolled back.
func tryState(rootPath, id string) string {
	root, err := rootfs.Open(rootPath)
	if err != nil {
		return "unknown"
	}
	defer root.Close()
	rec, err := recordstore.Load(root)
	switch {
	case err != nil:
		return "unknown"
	case rec.Pending != nil && rec.Pending.ID == id:
		return "pending"
	case rec.Pending == nil && rec.Applied != nil && rec.Applied.Transaction == id:
		return "confirmed"
	default:
		return "rolled back"
	}
}

// rollbackTry rolls try id back, if it is still pending, and then stops its watcher.
func rollbackTry(rootPath, id, reason string, stdout, stderr io.Writer) int {
	ctx := context.Background()
	s, status, ok := open(ctx, "try", rootPath, apply.Options{Timeout: 30 * time.Second}, false, stdout, stderr)
	defer s.end()
	if !ok {
		return status
	}
	var watcher *record.Process
	if p := s.engine.Record().Pending; p != nil && p.ID == id {
		watcher = p.Watcher
	}
	out, err := s.engine.RollbackPending(ctx, id, reason)
	if err != nil {
		eprintf(stderr, "symroute try: %v\n", err)
		return ExitSystem
	}
	stopProcess(watcher)
	eprintf(stderr, "symroute try: %s\n", rolledBack("try", out))
	return ExitFailed
}

var confirmCommand = &command{
	name:    "confirm",
	summary: "keep the change a try made",
	long:    "Keeps the change the pending symroute try made and stops its watcher. Run it from a session other than the try's: that it works is the proof the change leaves the host reachable.",
	examples: []example{
		{"Keep the pending try", "symroute confirm"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var root string
		rootFlag(fs, &root)
		return func(in input) int { return confirm(root, "", in.stdout, in.stderr) }
	},
}

// rootFlag defines --root for the commands that read no description.
func rootFlag(fs *pflag.FlagSet, root *string) {
	fs.StringVar(root, "root", "/", "the root of the system")
	describeValue(fs, "root", "DIR", directories)
}

// confirm keeps the pending try (try id, when id is given) and then stops its watcher.
func confirm(rootPath, id string, stdout, stderr io.Writer) int {
	e, done, ok := offlineEngine("confirm", rootPath, apply.Deps{}, stdout, stderr)
	if !ok {
		return ExitSystem
	}
	defer done()
	watcher, err := e.Confirm(id)
	if err != nil {
		eprintf(stderr, "symroute confirm: %v\n", err)
		return ExitFailed
	}
	stopProcess(watcher)
	return ExitOK
}

// startWatcher starts the process that rolls try id back at its deadline unless it is confirmed: this binary
// again, in a session of its own, so a closed terminal does not take it along. Its lines go to
// run/symroute/symroute-try.log under the root, beside the lock.
func startWatcher(rootPath, id string, deadline time.Time) (record.Process, error) {
	self, err := os.Executable()
	if err != nil {
		return record.Process{}, err
	}
	r, err := rootfs.Open(rootPath)
	if err != nil {
		return record.Process{}, err
	}
	defer r.Close()
	dir, err := r.OpenDir(lock.Dir, true)
	if err != nil {
		return record.Process{}, err
	}
	defer dir.Close()
	log, err := dir.OpenLog("symroute-try.log")
	if err != nil {
		return record.Process{}, err
	}
	defer log.Close()
	cmd := exec.Command(self, watchCommand, "--root", rootPath, "--id", id, "--deadline", deadline.UTC().Format(time.RFC3339Nano))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return record.Process{}, err
	}
	p, err := processOf(cmd.Process.Pid)
	if err != nil {
		p = record.Process{PID: cmd.Process.Pid}
	}
	cmd.Process.Release()
	return p, nil
}

// watchCommand is the hidden command the watcher runs.
const watchCommand = "__watch-try"

// watchPoll is how often the watcher reads the record: to end once the try is settled, and to roll back at once
// when the run that started it died before the try verified.
const watchPoll = time.Second

// watchTry rolls try id back at its deadline; at once when the run that started it dies before the try verified,
// and at once on SIGTERM while the try is still pending (confirm and the run's own rollback settle the try
// before they stop the watcher; anything else sending SIGTERM, a shutdown or the end of the login session, means
// nobody is left to confirm). It ends as soon as the try is confirmed or rolled back.
var watchTryCommand = &command{
	name:   watchCommand,
	hidden: true,
	setup: func(fs *pflag.FlagSet) runner {
		var root, id, until string
		fs.StringVar(&root, "root", "/", "")
		fs.StringVar(&id, "id", "", "")
		fs.StringVar(&until, "deadline", "", "")
		return func(in input) int { return watchTry(root, id, until, in.stdout, in.stderr) }
	},
}

func watchTry(root, id, until string, stdout, stderr io.Writer) int {
	// The deadline comes on the command line too, so it holds while the record cannot be read.
	deadline, err := time.Parse(time.RFC3339Nano, until)
	if err != nil {
		eprintf(stderr, "symroute %s: --deadline: %v\n", watchCommand, err)
		return ExitInvalid
	}
	signal.Ignore(syscall.SIGHUP)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	tick := time.NewTicker(watchPoll)
	defer tick.Stop()
	for {
		tx, pending := pendingTry(root, id)
		if !pending {
			return ExitOK // confirmed, or rolled back
		}
		reason := ""
		switch {
		case !time.Now().Before(deadline):
			reason = "not confirmed by the deadline"
		case tx != nil && !tx.Verified && !alive(tx.Process):
			reason = fmt.Sprintf("the symroute try that started it (pid %d) ended before the try verified", tx.Process.PID)
		}
		if reason == "" {
			select {
			case <-term:
				reason = "the watcher was told to stop (a shutdown, or the end of the login session) and nobody confirmed"
			case <-tick.C:
				continue
			}
		}
		fmt.Fprintf(stdout, "%s: try %s: %s; rolling back\n", time.Now().Format(time.DateTime), id, reason)
		// The lock may be held for a while (the try itself, rolling back on the same shutdown): keep at it while
		// the try is pending.
		for attempt := 0; ; attempt++ {
			status := rollbackTry(root, id, reason, stdout, stderr)
			if _, pending := pendingTry(root, id); !pending || attempt == watchAttempts {
				return status
			}
			time.Sleep(watchPoll)
		}
	}
}

// watchAttempts bounds the watcher's attempts at a rollback that cannot take the lock, each waiting
// lock.DefaultWait.
const watchAttempts = 20

// pendingTry reads, without the lock, the pending transaction if it is try id; where the record cannot be read,
// the try counts as pending, with no transaction to look at.
func pendingTry(rootPath, id string) (*record.Transaction, bool) {
	r, err := rootfs.Open(rootPath)
	if err != nil {
		return nil, true
	}
	defer r.Close()
	rec, err := recordstore.Load(r)
	if err != nil {
		return nil, true
	}
	if rec.Pending == nil || rec.Pending.ID != id {
		return nil, false
	}
	return rec.Pending, true
}

var removeCommand = &command{
	name:    "remove",
	summary: "undo what symroute applied; links keep the addresses its files gave them",
	long: "Undoes what the record says symroute applied: deletes its files, sets each sysctl key it set back to its " +
		"value from before symroute, removes its rules, and has networkd drop the rest. A link whose addresses come " +
		"from symroute's own .network file keeps them: the file stays, stripped of the routing, until --all. " +
		"Refuses to cut an established connection unless --force. --offline changes only the files, for an image or " +
		"a chroot where networkd does not run.",
	examples: []example{
		{"Take symroute's routing away, keeping every link's addresses", "symroute remove"},
		{"Take symroute's files out of an unpacked image", "symroute remove --offline --root /mnt/image"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var root string
		var all, force, offline, quiet bool
		var timeout time.Duration
		rootFlag(fs, &root)
		quietFlag(fs, &quiet)
		fs.BoolVar(&all, "all", false, "also delete symroute's own .network files, and with them the addresses they give their links")
		fs.BoolVar(&force, "force", false, "go ahead although established connections use what the removal takes away")
		fs.BoolVar(&offline, "offline", false, "change only the files, for an image or a chroot where networkd does not run")
		fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for networkd")
		describeValue(fs, "timeout", "DURATION", nothing)
		return func(in input) int {
			return removeRun(root, all, force, offline, timeout, progressTo(in.stdout, quiet), in.stdout, in.stderr)
		}
	},
}

func removeRun(root string, all, force, offline bool, timeout time.Duration, progress, stdout, stderr io.Writer) int {
	var rm apply.Removal
	if offline {
		code, ok := removeOffline(root, all, &rm, progress, stderr)
		if !ok {
			return code
		}
	} else {
		ctx, stop := signalContext("remove", stderr)
		defer stop()
		s, status, ok := open(ctx, "remove", root, apply.Options{Timeout: timeout, Force: force}, true, progress, stderr)
		defer s.end()
		if !ok {
			return status
		}
		out, removal, err := s.engine.Remove(ctx, all)
		if err != nil {
			code := outcome("remove", "", timeout, out, err, stdout, progress, stderr)
			return max(code, ExitFailed)
		}
		rm = removal
	}
	for link, addrs := range rm.Kept {
		fmt.Fprintf(stdout, "kept %s's own .network file, stripped of symroute's routing: it gives %s its addresses %v, which networkd would remove with it. Move them to a .network file of your own, then run symroute remove --all\n",
			link, link, addrs)
	}
	for _, r := range rm.Remaining {
		eprintf(stderr, "symroute remove: still present: %s\n", r)
	}
	if len(rm.Remaining) > 0 {
		return ExitFailed
	}
	fmt.Fprintln(stdout, "symroute remove: done")
	return ExitOK
}

// recoverCmd undoes a pending transaction: what every changing command does first, on its own. With --offline
// (the boot unit, before networkd starts) it puts the files and values back and leaves networkd to read them.
var recoverCommand = &command{
	name:    "recover",
	summary: "undo a change left unfinished or unconfirmed (every command does this first; at boot, a unit)",
	long: "Undoes a transaction an earlier run left unfinished (killed, or the host lost power) or a try nobody " +
		"confirmed, as every changing command does first. --offline puts only the files and values back, for the " +
		"boot unit symroute-recover.service, which runs before networkd starts.",
	examples: []example{
		{"Undo what an interrupted apply left", "symroute recover"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var root string
		var offline bool
		var timeout time.Duration
		rootFlag(fs, &root)
		fs.BoolVar(&offline, "offline", false, "networkd is not running (at boot, before it starts): put the files and values back only")
		fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for networkd")
		describeValue(fs, "timeout", "DURATION", nothing)
		return func(in input) int { return recoverRun(root, offline, timeout, in.stdout, in.stderr) }
	},
}

func recoverRun(root string, offline bool, timeout time.Duration, stdout, stderr io.Writer) int {
	if !offline {
		ctx, stop := signalContext("recover", stderr)
		defer stop()
		s, status, ok := open(ctx, "recover", root, apply.Options{Timeout: timeout}, true, stdout, stderr)
		s.end()
		if ok {
			fmt.Fprintln(stdout, "symroute recover: nothing is pending")
		}
		return status
	}
	e, done, ok := offlineEngine("recover", root, apply.Deps{Sysctl: sysctl.Applier{ProcSys: "/proc/sys"}, Connmark: &nftables.Ruleset{}, Alive: alive}, stdout, stderr)
	if !ok {
		return ExitSystem
	}
	defer done()
	if err := e.RecoverFiles(); err != nil {
		eprintf(stderr, "symroute recover: %v\n", err)
		if errors.Is(err, apply.ErrTryPending) {
			return ExitFailed
		}
		return ExitSystem
	}
	return ExitOK
}

// removeOffline takes symroute's files away under root without a networkd, a kernel or sysctls to change.
func removeOffline(rootPath string, all bool, rm *apply.Removal, progress, stderr io.Writer) (int, bool) {
	e, done, ok := offlineEngine("remove", rootPath, apply.Deps{}, progress, stderr)
	if !ok {
		return ExitSystem, false
	}
	defer done()
	var err error
	if *rm, err = e.RemoveFiles(all); err != nil {
		eprintf(stderr, "symroute remove: %v\n", err)
		return ExitSystem, false
	}
	return ExitOK, true
}

// offlineEngine opens root, takes its lock and loads the record, for the commands that change files but need no
// networkd: confirm, recover --offline, remove --offline. done releases the lock and the root; ok false means the
// failure was reported on stderr.
func offlineEngine(cmd, rootPath string, deps apply.Deps, log, stderr io.Writer) (e *apply.Engine, done func(), ok bool) {
	r, err := rootfs.Open(rootPath)
	if err != nil {
		eprintf(stderr, "symroute %s: %v\n", cmd, err)
		return nil, nil, false
	}
	release, ok := lockRoot(context.Background(), cmd, r, lock.DefaultWait, log, stderr)
	if !ok {
		r.Close()
		return nil, nil, false
	}
	done = func() { release(); r.Close() }
	if e, err = apply.New(apply.Options{Root: r, Log: lineWriter{log}}, deps); err != nil {
		done()
		eprintf(stderr, "symroute %s: %v\n", cmd, err)
		return nil, nil, false
	}
	return e, done, true
}
