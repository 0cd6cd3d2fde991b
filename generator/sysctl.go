package generator

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"

	"github.com/symroute/symroute/internal/core/confdirs"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/ifname"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/core/sysctlconf"
)

// SysctlDirs are systemd-sysctl's directories in precedence order: a file name in an earlier one masks the same
// name in a later one, and all files are applied sorted by name, so a later file's assignment wins.
var SysctlDirs = []string{"etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d"}

// sysctlAssignment is one explicit key = value in a sysctl.d file.
type sysctlAssignment struct {
	file, value string
}

// rpFilter reads an rp_filter value; ok is false for anything the kernel would not take.
func (a sysctlAssignment) rpFilter() (int, bool) {
	v, err := strconv.Atoi(a.value)
	return v, err == nil && v >= 0 && v <= 2
}

// checkSysctlOverrides warns where another sysctl.d file defeats symroute's rp_filter: by setting the same key in
// a file that sorts after symroute's, or by setting conf.all above the interface's value (the kernel applies
// max(all, interface)). Globs are left out: systemd-sysctl never lets a glob override an explicit key.
func checkSysctlOverrides(root fs.FS, p *plan.Plan, r *report.Report) error {
	files, err := confdirs.List(root, SysctlDirs, ".conf")
	if err != nil {
		return err
	}
	ours := path.Base(ownership.SysctlPath)
	last := map[string]sysctlAssignment{} // the assignment that wins, over every file but ours
	after := map[string]sysctlAssignment{}
	for _, f := range files {
		p, name := f.Path, f.Name
		data, err := fs.ReadFile(root, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a dangling link, such as /etc/sysctl.d/99-sysctl.conf without /etc/sysctl.conf
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if ownership.IsOwned(p, data) {
			continue
		}
		for _, a := range sysctlconf.Parse(data) {
			key := sysctlconf.Path(a.Key)
			last[key] = sysctlAssignment{"/" + p, a.Value}
			if name > ours {
				after[key] = sysctlAssignment{"/" + p, a.Value}
			}
		}
	}

	all, allSet := last[sysctlconf.Path("net.ipv4.conf.all.rp_filter")]
	if p.Host.RPFilterAll != nil {
		if a, ok := after[sysctlconf.Path("net.ipv4.conf.all.rp_filter")]; ok {
			warnAt(r, p.Host, report.Path{"rp_filter_all"}, "%s sets net.ipv4.conf.all.rp_filter = %s after symroute's %s, so it wins; remove it there or match it here", a.file, report.Shorten(a.value), ours)
		}
		allSet = false // symroute's own all.rp_filter is what applies, or the warning above says why not
	}
	for _, ifc := range p.Interfaces {
		at := report.Path{"interfaces", ifc.Position, "rp_filter"}
		key := ifname.SysctlKey(ifc.Name, "rp_filter")
		if a, ok := after[sysctlconf.Path(key)]; ok {
			warnAt(r, p.Host, at, "%s sets %s = %s after symroute's %s, so it wins; remove it there or match it here", a.file, key, report.Shorten(a.value), ours)
			continue
		}
		if v, ok := all.rpFilter(); allSet && ok && v > int(ifc.RPFilter) {
			warnAt(r, p.Host, at, "%s cannot take effect: %s sets net.ipv4.conf.all.rp_filter = %s, and the kernel uses the larger of all and the interface's value; set rp_filter_all here to take it over",
				ifc.RPFilter, all.file, report.Shorten(all.value))
		}
	}
	return nil
}

func warnAt(r *report.Report, h *description.Host, p report.Path, format string, args ...any) {
	r.Add(report.Warning, p, h.Pos(p), format, args...)
}
