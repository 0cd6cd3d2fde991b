package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/symroute/symroute/internal/core/ownership"

	"golang.org/x/sys/unix"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/confdirs"
	"github.com/symroute/symroute/internal/core/networkfiles"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/kernel"
	"github.com/symroute/symroute/internal/edges/networkd"
	"github.com/symroute/symroute/internal/edges/nftables"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/edges/sockets"
	"github.com/symroute/symroute/internal/edges/sysctl"
	"github.com/symroute/symroute/internal/edges/systemd"
	"github.com/symroute/symroute/internal/orchestration/apply"
)

// liveDeps connects the engine to this host: the kernel of this network namespace, networkd and the systemd
// manager on the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured), systemd-sysctl, and /proc.
func liveDeps(ctx context.Context, root *rootfs.Root, rootPath string) (apply.Deps, func(), error) {
	dctx, cancel := context.WithTimeout(ctx, busTimeout)
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
	applier := sysctl.Applier{ProcSys: "/proc/sys"}
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
	self, err := processOf(os.Getpid())
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
		Alive:           alive,
	}
	return deps, func() { client.Close() }, nil
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

// processOf names pid by its start time and the boot, so a recorded process is not mistaken for a later one with
// its pid, in this boot or another.
func processOf(pid int) (record.Process, error) {
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

// alive reports whether p still runs: the same pid with the same start time, in the same boot.
func alive(p record.Process) bool {
	now, err := processOf(p.PID)
	return err == nil && now == p
}

// stopProcess asks a recorded process (a try's watcher) to end, if it is still that process.
func stopProcess(p *record.Process) {
	if p != nil && alive(*p) {
		unix.Kill(p.PID, unix.SIGTERM)
	}
}

// waitGone waits up to limit for p to exit.
func waitGone(p *record.Process, limit time.Duration) {
	for deadline := time.Now().Add(limit); p != nil && alive(*p) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// liveLinks reads what networkd's [Match] sees on each described interface's running link; a link that is not
// there, or a kernel that cannot be asked, leaves the interface to what the description says.
func liveLinks(p *plan.Plan) map[string]networkfiles.Link {
	reader, err := kernel.NewReader(nil)
	if err != nil {
		return nil
	}
	out := map[string]networkfiles.Link{}
	for _, ifc := range p.Interfaces {
		if l, ok, err := reader.LinkFacts(ifc.Name); err == nil && ok {
			out[ifc.Name] = l
		}
	}
	return out
}

// appliedNow asks networkd which .network file it applies to each link now; nil when networkd does not answer
// within busTimeout (not running, or not on this bus): nothing to compare then.
func appliedNow() map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	client, err := networkd.Dial(ctx, "")
	if err != nil {
		return nil
	}
	defer client.Close()
	links, err := client.DescribeLinks(ctx)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, l := range links {
		if l.NetworkFile != "" {
			out[l.Name] = l.NetworkFile
		}
	}
	return out
}
