package nettest

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// Manager stands in for the systemd manager on a test's bus (PID 1 is not systemd here): it answers
// org.freedesktop.systemd1.Manager.RestartUnit as systemd does (a job path back, then a JobRemoved signal with the
// job's result) and the Version property, so symroute restarts networkd through the same D-Bus calls as on a host.
// What a restart does is the test's: Restart is called with the unit's name.
type Manager struct {
	conn *dbus.Conn
	// Restart carries out a restart; an error makes the job end "failed".
	Restart func(unit string) error
	// Fail makes every job end with this result (such as "failed") without restarting anything.
	Fail atomic.Value
	mu   sync.Mutex
	jobs uint32
	// Restarts counts the restarts carried out, by unit.
	Restarts map[string]int
}

const managerPath = dbus.ObjectPath("/org/freedesktop/systemd1")

// StartManager claims org.freedesktop.systemd1 on bus, until the test ends.
func StartManager(t T, bus *Bus, version string, restart func(unit string) error) *Manager {
	t.Helper()
	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	m := &Manager{conn: conn, Restart: restart, Restarts: map[string]int{}}
	m.Fail.Store("")
	if err := conn.Export(manager{m}, managerPath, "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	if _, err := prop.Export(conn, managerPath, prop.Map{
		"org.freedesktop.systemd1.Manager": {"Version": {Value: version, Writable: false, Emit: prop.EmitFalse}},
	}); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("claim org.freedesktop.systemd1: %v (reply %d)", err, reply)
	}
	return m
}

// manager holds the exported methods.
type manager struct{ m *Manager }

// RestartUnit queues the restart as a job and answers with its path; JobRemoved follows when it is done.
func (x manager) RestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	m := x.m
	m.mu.Lock()
	m.jobs++
	id := m.jobs
	m.mu.Unlock()
	job := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
	go func() {
		result := "done"
		if fail := m.Fail.Load().(string); fail != "" {
			result = fail
		} else if err := m.Restart(name); err != nil {
			result = "failed"
		} else {
			m.mu.Lock()
			m.Restarts[name]++
			m.mu.Unlock()
		}
		m.conn.Emit(managerPath, "org.freedesktop.systemd1.Manager.JobRemoved", id, job, name, result)
	}()
	return job, nil
}

// Count returns how many restarts of unit were carried out.
func (m *Manager) Count(unit string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.Restarts[unit]
}
