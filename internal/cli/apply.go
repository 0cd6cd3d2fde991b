package cli

import (
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

	"github.com/symroute/symroute/internal/apply"
	"github.com/symroute/symroute/internal/lock"
	"github.com/symroute/symroute/internal/record"
	"github.com/symroute/symroute/internal/rootfs"
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
func open(ctx context.Context, cmd, rootPath string, opts apply.Options, recover bool, stdout, stderr io.Writer) (s *session, status int, ok bool) {
	s = &session{}
	var err error
	if s.root, err = rootfs.Open(rootPath); err != nil {
		eprintf(stderr, "symroute %s: %v; nothing was changed\n", cmd, err)
		return s, ExitSystem, false
	}
	if s.release, ok = lockRoot(ctx, cmd, s.root, lock.DefaultWait, stdout, stderr); !ok {
		return s, ExitSystem, false
	}
	deps, closeDeps, err := liveDeps(ctx, s.root, rootPath)
	if err != nil {
		eprintf(stderr, "symroute %s: %v\n", cmd, err)
		return s, ExitSystem, false
	}
	s.close = closeDeps
	opts.Root = s.root
	opts.Log = lineWriter{stdout}
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

// signalContext is cancelled by SIGINT or SIGTERM. The engine answers the cancellation by rolling back, in a
// context of its own; until that is done, further signals are caught and only said to be ignored.
func signalContext(cmd string, stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
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

func applyCmd(args []string, stdout, stderr io.Writer) int {
	var c common
	var timeout time.Duration
	var noRollback, force bool
	fs := newFlags("apply", stderr, &c, "/")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for networkd and for verification before rolling back")
	fs.BoolVar(&noRollback, "no-rollback", false, "keep the new state when verification fails")
	fs.BoolVar(&force, "force", false, "apply even when an established connection uses an address the change removes")
	if status, ok := parseFlags(fs, args, stderr); !ok {
		return status
	}
	l, files, status, ok := loadAndGenerate(c, stderr)
	if !ok {
		return status
	}
	ctx, stop := signalContext("apply", stderr)
	defer stop()
	s, status, ok := open(ctx, "apply", c.root, apply.Options{Timeout: timeout, NoRollback: noRollback, Force: force, Strict: c.strict}, true, stdout, stderr)
	defer s.end()
	if !ok {
		return status
	}
	out, err := s.engine.Apply(ctx, apply.Request{Plan: l.plan, Files: files, Description: l.source, Op: record.OpApply})
	return outcome("apply", c.config, timeout, out, err, stdout, stderr)
}

// outcome prints an apply's or a try's outcome and returns the exit status.
func outcome(cmd, config string, timeout time.Duration, out apply.Outcome, err error, stdout, stderr io.Writer) int {
	switch {
	case errors.Is(err, apply.ErrRefused):
		eprintf(stderr, "symroute %s: %v\n", cmd, err)
		return ExitFailed
	case out.Interrupted:
		eprintf(stderr, "symroute %s: interrupted; %s\n", cmd, rolledBack(out))
		return ExitFailed
	case err != nil:
		eprintf(stderr, "symroute %s: %v\n", cmd, err)
		if out.RolledBack {
			eprintf(stderr, "symroute %s: %s\n", cmd, rolledBack(out))
		}
		return ExitSystem
	}
	printResult(stdout, stderr, config, out.Result)
	if out.Verified {
		return ExitOK
	}
	if out.RolledBack {
		eprintf(stderr, "symroute %s: verification failed within %v; %s\n", cmd, timeout, rolledBack(out))
	} else {
		eprintf(stderr, "symroute %s: verification failed within %v\n", cmd, timeout)
	}
	return ExitFailed
}

func rolledBack(out apply.Outcome) string {
	switch {
	case !out.RolledBack:
		return "nothing was changed"
	case out.PreviousBack:
		return "the previous state is restored and verified: every rule and route is as before"
	default:
		return "the previous files are restored, but the state differs from before:\n  " + strings.Join(out.PreviousDiff, "\n  ")
	}
}

func tryCmd(args []string, stdout, stderr io.Writer) int {
	var c common
	var window, wait time.Duration
	fs := newFlags("try", stderr, &c, "/")
	fs.DurationVar(&window, "timeout", 120*time.Second, "how long to wait for confirmation before rolling back")
	fs.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for networkd and for verification")
	if status, ok := parseFlags(fs, args, stderr); !ok {
		return status
	}
	l, files, status, ok := loadAndGenerate(c, stderr)
	if !ok {
		return status
	}
	ctx, stop := signalContext("try", stderr)
	defer stop()
	// try goes ahead over the connections apply would refuse to cut: that is what it is for. It names them, and
	// rolls back unless confirmed from a session that still works.
	s, status, ok := open(ctx, "try", c.root, apply.Options{Timeout: wait, Force: true, Strict: c.strict}, true, stdout, stderr)
	if !ok {
		s.end()
		return status
	}
	deadline := time.Now().Add(window)
	out, err := s.engine.Apply(ctx, apply.Request{Plan: l.plan, Files: files, Description: l.source, Op: record.OpTry, Deadline: deadline})
	if errors.Is(err, apply.ErrRefused) {
		s.end()
		return outcome("try", c.config, wait, out, err, stdout, stderr)
	}
	if err != nil || !out.Verified {
		s.end()
		return outcome("try", c.config, wait, out, err, stdout, stderr)
	}
	printResult(stdout, stderr, c.config, out.Result)
	tx := s.engine.Record().Pending
	watcher, err := startWatcher(c.root, tx.ID)
	if err != nil {
		eprintf(stderr, "symroute try: cannot start the process that rolls back at the deadline (%v); rolling back now\n", err)
		out, err := s.engine.RollbackPending(context.Background(), tx.ID, "no watcher")
		s.end()
		return outcome("try", c.config, wait, out, err, stdout, stderr)
	}
	tx.Watcher = &watcher
	if err := record.Save(s.root, s.engine.Record()); err != nil {
		stopProcess(&watcher)
		eprintf(stderr, "symroute try: %v\n", err)
		s.end()
		return ExitSystem
	}
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
	fmt.Fprintf(stdout, "Otherwise it is rolled back at %s, also if this session is cut off.\n", deadline.Format(time.TimeOnly))
	return awaitConfirmation(ctx, c.root, tx.ID, interactive, stdout, stderr)
}

// awaitConfirmation waits until the try is confirmed (Enter here, or symroute confirm elsewhere) or rolled back
// (by its watcher at the deadline, or here on a signal).
func awaitConfirmation(ctx context.Context, rootPath, id string, interactive bool, stdout, stderr io.Writer) int {
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
			return confirm(rootPath, stdout, stderr)
		case <-ctx.Done():
			return rollbackTry(rootPath, id, "interrupted before confirmation", stdout, stderr)
		case <-tick.C:
			switch st := tryState(rootPath, id); st {
			case "confirmed":
				fmt.Fprintln(stdout, "symroute try: confirmed; the new state is kept")
				return ExitOK
			case "rolled back":
				eprintf(stderr, "symroute try: not confirmed in time; the previous state is restored\n")
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
	rec, err := record.Load(root)
	switch {
	case err != nil:
		return "unknown"
	case rec.Pending != nil && rec.Pending.ID == id:
		return "pending"
	case rec.Pending == nil && rec.Applied != nil && rec.Applied.Description != "" && confirmedID(rec) == id:
		return "confirmed"
	default:
		return "rolled back"
	}
}

// confirmedID is the transaction a confirmed try's state came from.
func confirmedID(rec *record.Record) string {
	if rec.Applied == nil {
		return ""
	}
	return rec.Applied.Transaction
}

func rollbackTry(rootPath, id, reason string, stdout, stderr io.Writer) int {
	ctx := context.Background()
	s, status, ok := open(ctx, "try", rootPath, apply.Options{Timeout: 30 * time.Second}, false, stdout, stderr)
	defer s.end()
	if !ok {
		return status
	}
	watcher := (*record.Process)(nil)
	if p := s.engine.Record().Pending; p != nil {
		watcher = p.Watcher
	}
	out, err := s.engine.RollbackPending(ctx, id, reason)
	stopProcess(watcher)
	if err != nil {
		eprintf(stderr, "symroute try: %v\n", err)
		return ExitSystem
	}
	eprintf(stderr, "symroute try: %s\n", rolledBack(out))
	return ExitFailed
}

func confirmCmd(args []string, stdout, stderr io.Writer) int {
	var root string
	fs := pflagSet("confirm", stderr)
	fs.StringVar(&root, "root", "/", "root `directory` of the system")
	if status, ok := parseFlags(fs, args, stderr); !ok {
		return status
	}
	return confirm(root, stdout, stderr)
}

func confirm(rootPath string, stdout, stderr io.Writer) int {
	r, err := rootfs.Open(rootPath)
	if err != nil {
		eprintf(stderr, "symroute confirm: %v\n", err)
		return ExitSystem
	}
	defer r.Close()
	release, ok := lockRoot(context.Background(), "confirm", r, lock.DefaultWait, stdout, stderr)
	if !ok {
		return ExitSystem
	}
	defer release()
	e, err := apply.New(apply.Options{Root: r, Log: lineWriter{stdout}}, apply.Deps{})
	if err != nil {
		eprintf(stderr, "symroute confirm: %v\n", err)
		return ExitSystem
	}
	watcher, err := e.Confirm()
	if err != nil {
		eprintf(stderr, "symroute confirm: %v\n", err)
		return ExitFailed
	}
	stopProcess(watcher)
	return ExitOK
}

// startWatcher starts the process that rolls try id back at its deadline unless it is confirmed: this binary
// again, in a session of its own, so a cut-off terminal does not take it along. Its lines go to
// run/symroute-try.log under the root.
func startWatcher(rootPath, id string) (record.Process, error) {
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
	cmd := exec.Command(self, watchCommand, "--root", rootPath, "--id", id)
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

func watchTry(args []string, stdout, stderr io.Writer) int {
	var root, id string
	fs := pflagSet(watchCommand, stderr)
	fs.StringVar(&root, "root", "/", "")
	fs.StringVar(&id, "id", "", "")
	if status, ok := parseFlags(fs, args, stderr); !ok {
		return status
	}
	signal.Ignore(syscall.SIGHUP)
	r, err := rootfs.Open(root)
	if err != nil {
		return ExitSystem
	}
	rec, err := record.Load(r)
	r.Close()
	if err != nil || rec.Pending == nil || rec.Pending.ID != id {
		return ExitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		return ExitOK // confirmed, or rolled back by the session that started it
	case <-time.After(time.Until(rec.Pending.Deadline)):
	}
	stop()
	fmt.Fprintf(stdout, "%s: try %s was not confirmed by its deadline; rolling back\n", time.Now().Format(time.DateTime), id)
	return rollbackTry(root, id, "not confirmed by the deadline", stdout, stderr)
}

func removeCmd(args []string, stdout, stderr io.Writer) int {
	var root string
	var force, offline bool
	var timeout time.Duration
	fs := pflagSet("remove", stderr)
	fs.StringVar(&root, "root", "/", "root `directory` of the system")
	fs.BoolVar(&force, "force", false, "also delete symroute's own .network files, and with them the addresses they give their links")
	fs.BoolVar(&offline, "offline", false, "change only the files, for an image or a chroot where networkd does not run")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for networkd")
	if status, ok := parseFlags(fs, args, stderr); !ok {
		return status
	}
	var rm apply.Removal
	if offline {
		code, ok := removeOffline(root, force, &rm, stdout, stderr)
		if !ok {
			return code
		}
	} else {
		ctx, stop := signalContext("remove", stderr)
		defer stop()
		s, status, ok := open(ctx, "remove", root, apply.Options{Timeout: timeout, Force: force}, true, stdout, stderr)
		defer s.end()
		if !ok {
			return status
		}
		out, removal, err := s.engine.Remove(ctx, force)
		if err != nil {
			code := outcome("remove", "", timeout, out, err, stdout, stderr)
			return max(code, ExitFailed)
		}
		rm = removal
	}
	for link, addrs := range rm.Kept {
		fmt.Fprintf(stdout, "kept %s's own .network file, stripped of symroute's routing: it gives %s its addresses %v, which networkd would remove with it. Move them to a .network file of your own, then run symroute remove --force\n",
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

// removeOffline takes symroute's files away under root without a networkd, a kernel or sysctls to change.
func removeOffline(rootPath string, force bool, rm *apply.Removal, stdout, stderr io.Writer) (int, bool) {
	r, err := rootfs.Open(rootPath)
	if err != nil {
		eprintf(stderr, "symroute remove: %v\n", err)
		return ExitSystem, false
	}
	defer r.Close()
	release, ok := lockRoot(context.Background(), "remove", r, lock.DefaultWait, stdout, stderr)
	if !ok {
		return ExitSystem, false
	}
	defer release()
	e, err := apply.New(apply.Options{Root: r, Log: lineWriter{stdout}}, apply.Deps{})
	if err == nil {
		*rm, err = e.RemoveFiles(force)
	}
	if err != nil {
		eprintf(stderr, "symroute remove: %v\n", err)
		return ExitSystem, false
	}
	return ExitOK, true
}
