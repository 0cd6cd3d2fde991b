// Package live connects the apply engine to the running host: the kernel of this network namespace, networkd and
// the systemd manager on the system bus, systemd-sysctl and /proc, and the root's lock. The CLI's changing
// commands and the node agent's Host build their engines here, so both change the host the same way.
package live

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/confdirs"
	"github.com/symroute/symroute/internal/core/networkfiles"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/filesync"
	"github.com/symroute/symroute/internal/edges/kernel"
	"github.com/symroute/symroute/internal/edges/lock"
	"github.com/symroute/symroute/internal/edges/networkd"
	"github.com/symroute/symroute/internal/edges/nftables"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/edges/sockets"
	"github.com/symroute/symroute/internal/edges/sysctl"
	"github.com/symroute/symroute/internal/edges/systemd"
	"github.com/symroute/symroute/internal/orchestration/apply"
)

// DefaultProcSys is the sysctl tree of a process on the host.
const DefaultProcSys = "/proc/sys"

// BusTimeout bounds connecting to networkd on the system bus.
const BusTimeout = 3 * time.Second

// Deps connects the engine to this host: the kernel of this network namespace, networkd and the systemd
// manager on the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured), systemd-sysctl, and /proc. procSys is the
// sysctl tree, DefaultProcSys when empty: a container sees its own /proc/sys read-only and is handed the host's
// network sysctls elsewhere.
func Deps(ctx context.Context, root *rootfs.Root, rootPath, procSys string) (apply.Deps, func(), error) {
	dctx, cancel := context.WithTimeout(ctx, BusTimeout)
	client, err := networkd.Dial(dctx, "")
	cancel()
	if err != nil {
		return apply.Deps{}, nil, fmt.Errorf("%v; is systemd-networkd running? nothing was changed", err)
	}
	reader, err := kernel.NewReader(nil)
	if err != nil {
		client.Close()
		return apply.Deps{}, nil, err
	}
	if procSys == "" {
		procSys = DefaultProcSys
	}
	applier := sysctl.Applier{ProcSys: procSys}
	if rootPath != "/" {
		// systemd-sysctl reads the running system's sysctl.d; under another root, hand it that root's files.
		applier.Files = func() ([]string, error) {
			files, err := confdirs.List(root.ReadFS(), generator.SysctlDirs, ".conf")
			if err != nil {
				return nil, err
			}
			var paths []string
			for _, f := range files {
				paths = append(paths, root.Join(f.Path))
			}
			return paths, nil
		}
	}
	self, err := Process(os.Getpid())
	if err != nil {
		self = record.Process{PID: os.Getpid()}
	}
	deps := apply.Deps{
		Kernel:        reader,
		Networkd:      client,
		Sysctl:        applier,
		Connmark:      &nftables.Ruleset{},
		ReloadManager: systemd.Reload,
		RestartConnmark: func(ctx context.Context) error {
			return systemd.RestartUnit(ctx, ownership.ConnmarkUnit)
		},
		Unit: func(ctx context.Context, name, action string) error {
			if action == "stop" {
				return systemd.StopUnit(ctx, name)
			}
			return systemd.RestartUnit(ctx, name)
		},
		RestartNetworkd: func(ctx context.Context) error {
			return systemd.RestartUnit(ctx, "systemd-networkd.service")
		},
		ManagerAvailable: func(ctx context.Context) error {
			_, err := systemd.Version(ctx)
			return err
		},
		NetworkdVersion: networkdVersion,
		Connections:     sockets.Finder{Proc: "/proc"}.Established,
		Self:            self,
		Alive:           Alive,
	}
	return deps, func() { client.Close(); reader.Close() }, nil
}

// networkdVersion asks the systemd manager for its version, which is networkd's (one package), and, when
// thorough, networkctl where no manager answers.
func networkdVersion(ctx context.Context, thorough bool) (int, error) {
	v, err := systemd.Version(ctx)
	if err == nil || !thorough {
		return v, err
	}
	out, err := exec.CommandContext(ctx, "networkctl", "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("networkctl --version: %w", err)
	}
	return systemd.ParseVersion(string(out))
}

// Process names pid by its start time and the boot, so a recorded process is not mistaken for a later one with
// its pid, in this boot or another.
func Process(pid int) (record.Process, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return record.Process{}, err
	}
	// Field 22 is starttime; the command name (field 2) may hold spaces, so count after its closing ')'.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return record.Process{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return record.Process{}, err
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return record.Process{}, err
	}
	return record.Process{PID: pid, Start: start, BootID: strings.TrimSpace(string(boot))}, nil
}

// Alive reports whether p still runs: the same pid with the same start time, in the same boot.
func Alive(p record.Process) bool {
	now, err := Process(p.PID)
	return err == nil && now == p
}

// Links reads what networkd's [Match] sees on each described interface's running link; a link that is not
// there, or a kernel that cannot be asked, leaves the interface to what the description says.
func Links(p *plan.Plan) map[string]networkfiles.Link {
	reader, err := kernel.NewReader(nil)
	if err != nil {
		return nil
	}
	defer reader.Close()
	out := map[string]networkfiles.Link{}
	for _, ifc := range p.Interfaces {
		if l, ok, err := reader.LinkFacts(ifc.Name); err == nil && ok {
			out[ifc.Name] = l
		}
	}
	return out
}

// Lock takes root's lock, as every changing run does, waiting up to wait (waiting is told the holder while it
// waits), and then removes the temporary files an interrupted run left (removed is told each one).
func Lock(ctx context.Context, root *rootfs.Root, wait time.Duration, waiting, removed func(string)) (release func(), err error) {
	if release, err = lock.Take(ctx, root, wait, waiting); err != nil {
		return nil, err
	}
	paths, err := filesync.RemoveTemps(root, ownership.IsOwnedName, ownership.Globs)
	for _, p := range paths {
		removed(root.Join(p))
	}
	if err != nil {
		release()
		return nil, err
	}
	return release, nil
}
