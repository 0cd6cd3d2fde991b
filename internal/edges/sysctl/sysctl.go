// Package sysctl reads and applies the kernel parameters symroute owns, and only those. It applies them the way
// systemd's udev rule does for a new link: systemd-sysctl with a --prefix per key, so each key gets exactly the
// value the next boot gives it (symroute's file and any file that overrides it), and no other key on the host is
// touched. Restarting systemd-sysctl.service instead would re-apply every sysctl.d file, a distribution's
// "net.ipv4.conf.*.rp_filter = 2" onto existing CNI links included, which breaks Cilium.
package sysctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/sysctlconf"
)

// DefaultBinary is where Debian, Fedora and Flatcar install systemd-sysctl.
const DefaultBinary = "/lib/systemd/systemd-sysctl"

// Applier applies and reads keys.
type Applier struct {
	// ProcSys is the sysctl tree, /proc/sys on a host.
	ProcSys string
	// Binary is systemd-sysctl; when it is missing, Apply writes the planned values to ProcSys itself and says
	// so.
	Binary string
	// Files, when not nil, are the sysctl.d files to read instead of the system's own, in systemd's order: the
	// files of a --root other than /.
	Files func() ([]string, error)
}

// Read returns key's current value; exists is false when the key is not there (its link is not).
func (a Applier) Read(key string) (value string, exists bool, err error) {
	data, err := os.ReadFile(filepath.Join(a.ProcSys, sysctlconf.Path(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(data)), true, nil
}

// Write sets key to value directly, for an exact undo. A key whose link is gone is skipped.
func (a Applier) Write(key, value string) error {
	err := os.WriteFile(filepath.Join(a.ProcSys, sysctlconf.Path(key)), []byte(value+"\n"), 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Apply makes settings take effect as the next boot would, and says how it did.
func (a Applier) Apply(ctx context.Context, settings []plan.Sysctl) (string, error) {
	if len(settings) == 0 {
		return "", nil
	}
	bin := a.Binary
	if bin == "" {
		bin = DefaultBinary
	}
	if _, err := os.Stat(bin); err != nil {
		return a.writeDirect(settings, fmt.Sprintf("%s is missing", bin))
	}
	args := make([]string, 0, len(settings))
	var keys []string
	for _, s := range settings {
		args = append(args, "--prefix=/"+sysctlconf.Path(s.Key))
		keys = append(keys, s.Key)
	}
	if a.Files != nil {
		files, err := a.Files()
		if err != nil {
			return "", err
		}
		args = append(args, files...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	how := fmt.Sprintf("systemd-sysctl applied %s", strings.Join(keys, ", "))
	if msg := strings.TrimSpace(out.String()); msg != "" {
		how += " (" + strings.ReplaceAll(msg, "\n", "; ") + ")"
	}
	return how, nil
}

// writeDirect writes the planned values themselves, without systemd-sysctl.
func (a Applier) writeDirect(settings []plan.Sysctl, why string) (string, error) {
	written, absent := 0, []string{}
	for _, s := range settings {
		path := filepath.Join(a.ProcSys, sysctlconf.Path(s.Key))
		err := os.WriteFile(path, []byte(s.Value+"\n"), 0o644)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// As systemd-sysctl: the link is not there yet; udev applies the key when it appears.
			absent = append(absent, s.Key)
		case err != nil:
			return "", fmt.Errorf("%s, and writing %s failed: %w", why, path, err)
		default:
			written++
		}
	}
	how := fmt.Sprintf("%s; wrote %d key(s) to %s directly, without other sysctl.d files' overrides", why, written, a.ProcSys)
	if len(absent) > 0 {
		how += fmt.Sprintf(", skipped %s (no such link yet)", strings.Join(absent, ", "))
	}
	return how, nil
}
