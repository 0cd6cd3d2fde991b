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

	sd "github.com/coreos/go-systemd/v22/dbus"

	"github.com/symroute/symroute/internal/plan"
)

const unit = "systemd-sysctl.service"

// Applier applies sysctls.
type Applier struct {
	// ProcSys is the sysctl tree written to in the fallback, /proc/sys on a host.
	ProcSys string
}

// Apply makes the settings take effect and says how it did.
func (a Applier) Apply(ctx context.Context, settings []plan.Sysctl) (string, error) {
	if err := restartUnit(ctx); err == nil {
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

func restartUnit(ctx context.Context) error {
	conn, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan string, 1) // buffered: go-systemd writes the job result whether or not we still listen
	if _, err := conn.RestartUnitContext(ctx, unit, "replace", done); err != nil {
		return err
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("%s: job %s", unit, result)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
