package cli

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/symroute/symroute/internal/apply"
	"github.com/symroute/symroute/internal/kernel"
	"github.com/symroute/symroute/internal/networkd"
	"github.com/symroute/symroute/internal/rootfs"
	"github.com/symroute/symroute/internal/sysctl"
	"github.com/symroute/symroute/internal/systemd"
)

func applyCmd(args []string, stdout, stderr io.Writer) int {
	var c common
	var timeout time.Duration
	var noRollback bool
	fs := newFlags("apply", stderr, &c, "/")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the links and for verification before rolling back")
	fs.BoolVar(&noRollback, "no-rollback", false, "keep the new files when verification fails")
	if status, ok := parseFlags(fs, args, stderr); !ok {
		return status
	}
	l, files, status, ok := loadAndGenerate(c, stderr)
	if !ok {
		return status
	}

	ctx := context.Background()
	root, err := rootfs.Open(c.root)
	if err != nil {
		eprintf(stderr, "symroute apply: %v; nothing was written\n", err)
		return ExitSystem
	}
	defer root.Close()
	release, ok := lockRoot(ctx, "apply", root, timeout, stdout, stderr)
	if !ok {
		return ExitSystem
	}
	defer release()

	dctx, cancel := context.WithTimeout(ctx, busTimeout)
	client, err := networkd.Dial(dctx, "")
	cancel()
	if err != nil {
		eprintf(stderr, "symroute apply: %v; is systemd-networkd running? nothing was written\n", err)
		return ExitSystem
	}
	defer client.Close()

	reader, err := kernel.NewReader(nil)
	if err != nil {
		eprintf(stderr, "symroute apply: %v; nothing was written\n", err)
		return ExitSystem
	}
	out, err := apply.Run(ctx, l.plan, files, apply.Options{
		Root: root, Timeout: timeout, NoRollback: noRollback, Poll: 200 * time.Millisecond, Log: stdout,
	}, apply.Deps{
		Kernel: reader, Networkd: client, Sysctl: sysctl.Applier{ProcSys: "/proc/sys"}, ProcSys: "/proc/sys",
		RestartNetworkd: func(ctx context.Context) error { return systemd.RestartUnit(ctx, "systemd-networkd.service") },
	})
	if err != nil {
		eprintf(stderr, "symroute apply: %v\n", err)
		if out.RolledBack {
			eprintf(stderr, "symroute apply: the previous files were restored\n")
		}
		return ExitSystem
	}
	if out.Result.OK() {
		printResult(stdout, stderr, c.config, out.Result)
		return ExitOK
	}
	printResult(stdout, stderr, c.config, out.Result)
	switch {
	case out.RolledBack && out.PreviousBack:
		eprintf(stderr, "symroute apply: verification failed within %v; the previous files are restored and the previous state verified\n", timeout)
	case out.RolledBack:
		eprintf(stderr, "symroute apply: verification failed within %v; the previous files are restored, but the state differs from before:\n  %s\n", timeout, strings.Join(out.PreviousDiff, "\n  "))
	case noRollback && len(out.Changes) > 0:
		eprintf(stderr, "symroute apply: verification failed within %v; the new files were kept (--no-rollback)\n", timeout)
	default:
		eprintf(stderr, "symroute apply: verification failed within %v\n", timeout)
	}
	return ExitFailed
}
