// Package systemd asks the systemd manager, over D-Bus (go-systemd), to restart a unit and for its version, on
// the system bus that DBUS_SYSTEM_BUS_ADDRESS names. It tells "no manager answers" (a container, a test
// namespace) apart from "the manager ran the job and it failed": only the first may be worked around, and only
// by the caller, out loud.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// ErrNoManager is returned when no systemd manager answers on the system bus.
var ErrNoManager = errors.New("no systemd manager answers on the system bus")

func connect(ctx context.Context) (*sd.Conn, error) {
	conn, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoManager, err)
	}
	return conn, nil
}

// noManager reports whether err says the manager's name has no owner on the bus.
func noManager(err error) bool {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name == "org.freedesktop.DBus.Error.ServiceUnknown" || de.Name == "org.freedesktop.DBus.Error.NameHasNoOwner"
	}
	return false
}

// StopUnit stops name and waits for the job to finish; a unit systemd does not know is already stopped. The
// error wraps ErrNoManager when no manager answered.
func StopUnit(ctx context.Context, name string) error {
	return job(ctx, "stop", name, func(conn *sd.Conn, done chan<- string) (int, error) {
		return conn.StopUnitContext(ctx, name, "replace", done)
	})
}

// RestartUnit restarts name and waits for the job to finish. The error wraps ErrNoManager when no manager
// answered, and names the job's result when it ran and failed.
func RestartUnit(ctx context.Context, name string) error {
	return job(ctx, "restart", name, func(conn *sd.Conn, done chan<- string) (int, error) {
		return conn.RestartUnitContext(ctx, name, "replace", done)
	})
}

// job queues a job on name with start and waits for its result.
func job(ctx context.Context, verb, name string, start func(*sd.Conn, chan<- string) (int, error)) error {
	conn, err := connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan string, 1) // buffered: go-systemd writes the job result whether or not we still listen
	if _, err := start(conn, done); err != nil {
		if noManager(err) {
			return fmt.Errorf("%w: %v", ErrNoManager, err)
		}
		return fmt.Errorf("%s %s: %w", verb, name, err)
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("%s %s: the job ended %q; see journalctl -u %s", verb, name, result, name)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: %w", verb, name, ctx.Err())
	}
}

// Reload has the manager read its unit files again (systemctl daemon-reload), so a unit written or removed is
// known to it now rather than at the next boot. The error wraps ErrNoManager when no manager answered.
func Reload(ctx context.Context) error {
	conn, err := connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.ReloadContext(ctx); err != nil {
		if noManager(err) {
			return fmt.Errorf("%w: %v", ErrNoManager, err)
		}
		return fmt.Errorf("reload the systemd manager: %w", err)
	}
	return nil
}

// Version returns the manager's systemd version, such as 252. systemd-networkd ships in the same package, so it
// is networkd's version too.
func Version(ctx context.Context) (int, error) {
	conn, err := connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	v, err := conn.GetManagerProperty("Version")
	if err != nil {
		if noManager(err) {
			return 0, fmt.Errorf("%w: %v", ErrNoManager, err)
		}
		return 0, err
	}
	return ParseVersion(strings.Trim(v, `"`))
}

var leadingNumber = regexp.MustCompile(`(?:^|systemd )([0-9]+)`)

// ParseVersion reads the major version from "252.38-1~deb12u1" or networkctl's "systemd 252 (252.38-1~deb12u1)".
func ParseVersion(s string) (int, error) {
	m := leadingNumber.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("no systemd version in %q", s)
	}
	return strconv.Atoi(m[1])
}
