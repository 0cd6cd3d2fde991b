// Package systemd restarts units through systemd's D-Bus API (go-systemd), on the system bus that
// DBUS_SYSTEM_BUS_ADDRESS names, so symroute changes the system the way systemctl would.
package systemd

import (
	"context"
	"fmt"

	sd "github.com/coreos/go-systemd/v22/dbus"
)

// RestartUnit restarts name and waits for the job to finish.
func RestartUnit(ctx context.Context, name string) error {
	conn, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan string, 1) // buffered: go-systemd writes the job result whether or not we still listen
	if _, err := conn.RestartUnitContext(ctx, name, "replace", done); err != nil {
		return err
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("restart %s: job %s", name, result)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
