package networkd_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/symroute/symroute/internal/tools/nettest"
	"github.com/symroute/symroute/internal/tools/testenv"
)

// fakeNetworkd answers org.freedesktop.network1.Manager on a private bus with the answers a test sets, as
// networkd 252 does, and records every call in the order it arrived.
type fakeNetworkd struct {
	conn *dbus.Conn
	bus  *nettest.Bus

	mu sync.Mutex
	// calls lists the calls received, such as "DescribeLink 3".
	calls []string
	// describe is Manager.Describe's JSON; links is DescribeLink's JSON by ifindex.
	describe string
	links    map[int32]string
	// fail makes a method answer with this D-Bus error.
	fail map[string]*dbus.Error
	// hold, when not nil, keeps every call waiting until it is closed: networkd stopped (SIGSTOP) or busy.
	hold chan struct{}
}

const (
	managerPath  = dbus.ObjectPath("/org/freedesktop/network1")
	managerIface = "org.freedesktop.network1.Manager"
)

// privateBus starts a dbus-daemon of the test's own; it needs no root.
func privateBus(t *testing.T) *nettest.Bus {
	t.Helper()
	testenv.Program(t, "dbus-daemon", "dbus")
	return nettest.StartBus(t)
}

// startFake claims org.freedesktop.network1 on bus until the test ends.
func startFake(t *testing.T, bus *nettest.Bus) *fakeNetworkd {
	t.Helper()
	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNetworkd{conn: conn, bus: bus, links: map[int32]string{}, fail: map[string]*dbus.Error{}}
	t.Cleanup(func() {
		f.mu.Lock()
		if f.hold != nil {
			close(f.hold)
			f.hold = nil
		}
		f.mu.Unlock()
		conn.Close()
	})
	if err := conn.Export(manager{f}, managerPath, managerIface); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName("org.freedesktop.network1", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("claim org.freedesktop.network1: %v (reply %d)", err, reply)
	}
	return f
}

// SetLink sets DescribeLink's answer for ifindex; SetDescribe sets Describe's; Fail makes method answer with err.
func (f *fakeNetworkd) SetLink(ifindex int32, json string) {
	f.locked(func() { f.links[ifindex] = json })
}
func (f *fakeNetworkd) SetDescribe(json string) { f.locked(func() { f.describe = json }) }
func (f *fakeNetworkd) Fail(method string, err *dbus.Error) {
	f.locked(func() { f.fail[method] = err })
}

// Hold keeps every call from now on unanswered until the test ends.
func (f *fakeNetworkd) Hold() { f.locked(func() { f.hold = make(chan struct{}) }) }

func (f *fakeNetworkd) locked(do func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	do()
}

// Calls returns the calls received so far.
func (f *fakeNetworkd) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// answer records a call and returns the error the test set for method, after waiting while calls are held. As
// sd-bus does, it refuses arguments of any other signature than networkd's (godbus alone would convert them).
func (f *fakeNetworkd) answer(msg dbus.Message, signature, method, call string) *dbus.Error {
	if got := dbus.SignatureOf(msg.Body...).String(); got != signature {
		return dbus.NewError("org.freedesktop.DBus.Error.InvalidArgs", []any{fmt.Sprintf("%s takes %q, not %q", method, signature, got)})
	}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	hold, err := f.hold, f.fail[method]
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	return err
}

// EmitLinkState announces a link's AdministrativeState as networkd does: PropertiesChanged on the link's object,
// whose path ends in the ifindex escaped as systemd escapes bus paths.
func (f *fakeNetworkd) EmitLinkState(t *testing.T, path dbus.ObjectPath, changed map[string]dbus.Variant) {
	t.Helper()
	if err := f.conn.Emit(path, "org.freedesktop.DBus.Properties.PropertiesChanged", "org.freedesktop.network1.Link", changed, []string{}); err != nil {
		t.Fatal(err)
	}
}

// manager holds the exported methods.
type manager struct{ f *fakeNetworkd }

func (m manager) Reload(msg dbus.Message) *dbus.Error { return m.f.answer(msg, "", "Reload", "Reload") }

func (m manager) ReconfigureLink(msg dbus.Message, ifindex int32) *dbus.Error {
	return m.f.answer(msg, "i", "ReconfigureLink", fmt.Sprintf("ReconfigureLink %d", ifindex))
}

func (m manager) DescribeLink(msg dbus.Message, ifindex int32) (string, *dbus.Error) {
	if err := m.f.answer(msg, "i", "DescribeLink", fmt.Sprintf("DescribeLink %d", ifindex)); err != nil {
		return "", err
	}
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	data, ok := m.f.links[ifindex]
	if !ok {
		// networkd 252's answer for an index it does not know, error name included.
		return "", dbus.NewError("org.freedesktop.resolve1.NoSuchLink", []any{fmt.Sprintf("Link %d not known", ifindex)})
	}
	return data, nil
}

func (m manager) Describe(msg dbus.Message) (string, *dbus.Error) {
	if err := m.f.answer(msg, "", "Describe", "Describe"); err != nil {
		return "", err
	}
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	return m.f.describe, nil
}
