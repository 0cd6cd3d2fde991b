// Package sysctl applies symroute's sysctl.d settings the way the OS does: by restarting systemd-sysctl.service
// through systemd's D-Bus API, so the result is exactly what the next boot gives. Where no systemd manager
// answers (a container, a test namespace), it writes the same keys to /proc/sys itself and says so.
package sysctl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/symroute/symroute/internal/plan"
	"github.com/symroute/symroute/internal/systemd"
)

const unit = "systemd-sysctl.service"

// Applier applies sysctls.
type Applier struct {
	// ProcSys is the sysctl tree written to in the fallback, /proc/sys on a host.
	ProcSys string
}

// Apply makes the settings take effect and says how it did.
func (a Applier) Apply(ctx context.Context, settings []plan.Sysctl) (string, error) {
	if err := systemd.RestartUnit(ctx, unit); err == nil {
		return "restarted " + unit, nil
	} else if len(settings) == 0 {
		return "", nil
	} else {
		written, absent := 0, []string{}
		for _, s := range settings {
			path := filepath.Join(a.ProcSys, plan.ProcPath(s.Key))
			werr := os.WriteFile(path, []byte(s.Value+"\n"), 0o644)
			switch {
			case errors.Is(werr, fs.ErrNotExist):
				// Like systemd-sysctl: the link is not there yet; udev applies the key when it appears.
				absent = append(absent, s.Key)
			case werr != nil:
				return "", fmt.Errorf("no systemd manager answered (%v), and writing %s failed: %w", err, path, werr)
			default:
				written++
			}
		}
		how := fmt.Sprintf("no systemd manager answered (%v); wrote %d key(s) to %s directly", err, written, a.ProcSys)
		if len(absent) > 0 {
			how += fmt.Sprintf(", skipped %s (no such link yet)", strings.Join(absent, ", "))
		}
		return how, nil
	}
}
