package networkd_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/symroute/symroute/internal/edges/networkd"
	_ "github.com/symroute/symroute/internal/tools/golden"
)

// hang bounds a wait that only a bug would make long: no result depends on it.
const hang = 10 * time.Second

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// connected starts a private bus with a fake networkd on it and a client dialled to it.
func connected(t *testing.T) (*fakeNetworkd, *networkd.Client) {
	t.Helper()
	f := startFake(t, privateBus(t))
	c, err := networkd.Dial(context.Background(), f.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return f, c
}

// TestReloadAndReconfigureReachNetworkd: each call reaches networkd's Manager as the method it names, with the
// ifindex as the int32 networkd's signature takes, in the order made.
func TestReloadAndReconfigureReachNetworkd(t *testing.T) {
	f, c := connected(t)
	ctx := context.Background()
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.ReconfigureLink(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.ReconfigureLink(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Calls(), []string{"Reload", "ReconfigureLink 3", "ReconfigureLink 12"}; !reflect.DeepEqual(got, want) {
		t.Errorf("networkd received %q, want %q", got, want)
	}
}

// TestDescribeLinkReadsNetworkd252: the state and file are read from what networkd 252 answered for a link it
// configured (testdata, recorded from the real networkd in a namespace).
func TestDescribeLinkReadsNetworkd252(t *testing.T) {
	f, c := connected(t)
	f.SetLink(3, readTestdata(t, "describe-link-252.json"))
	got, err := c.DescribeLink(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	want := networkd.Link{Index: 3, Name: "eth-a", AdministrativeState: "configured", OperationalState: "routable", NetworkFile: "/etc/systemd/network/10-symroute-eth-a.network"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DescribeLink(3) = %+v, want %+v", got, want)
	}
	if calls := f.Calls(); !reflect.DeepEqual(calls, []string{"DescribeLink 3"}) {
		t.Errorf("networkd received %q", calls)
	}
}

// TestDescribeLinkReadsDropins: the drop-ins networkd read for the link's file, in its order, under the key
// networkd 252 uses (the integration test of status holds the real networkd to the same key).
func TestDescribeLinkReadsDropins(t *testing.T) {
	f, c := connected(t)
	f.SetLink(4, `{"Index":4,"Name":"eth-b","AdministrativeState":"configured","NetworkFile":"/run/systemd/network/10-netplan-eth-b.network",`+
		`"NetworkFileDropins":["/etc/systemd/network/10-netplan-eth-b.network.d/50-mtu.conf","/etc/systemd/network/10-netplan-eth-b.network.d/90-symroute.conf"]}`)
	got, err := c.DescribeLink(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/etc/systemd/network/10-netplan-eth-b.network.d/50-mtu.conf", "/etc/systemd/network/10-netplan-eth-b.network.d/90-symroute.conf"}
	if !reflect.DeepEqual(got.NetworkFileDropins, want) {
		t.Errorf("drop-ins %q, want %q", got.NetworkFileDropins, want)
	}
}

// TestDescribeLinksReadsEveryInterface: Manager.Describe lists every link; those networkd does not manage have
// no file.
func TestDescribeLinksReadsEveryInterface(t *testing.T) {
	f, c := connected(t)
	f.SetDescribe(readTestdata(t, "describe-252.json"))
	got, err := c.DescribeLinks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []networkd.Link{
		{Index: 1, Name: "lo", AdministrativeState: "unmanaged", OperationalState: "carrier"},
		{Index: 2, Name: "peer-a", AdministrativeState: "unmanaged", OperationalState: "carrier"},
		{Index: 3, Name: "eth-a", AdministrativeState: "configured", OperationalState: "routable", NetworkFile: "/etc/systemd/network/10-symroute-eth-a.network"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DescribeLinks = %+v\nwant %+v", got, want)
	}
}

// TestErrorsNameTheCallAndKeepNetworkdsError: a refusal names the call and the link, and keeps networkd's own
// D-Bus error for callers that tell one from another; an answer that is not JSON is an error, not an empty link.
func TestErrorsNameTheCallAndKeepNetworkdsError(t *testing.T) {
	f, c := connected(t)
	ctx := context.Background()

	_, err := c.DescribeLink(ctx, 99)
	var dbusErr dbus.Error
	if !errors.As(err, &dbusErr) || dbusErr.Name != "org.freedesktop.resolve1.NoSuchLink" || !strings.Contains(err.Error(), "networkd DescribeLink 99: Link 99 not known") {
		t.Errorf("DescribeLink of an unknown link: %v", err)
	}

	f.Fail("Reload", dbus.NewError("org.freedesktop.DBus.Error.AccessDenied", []any{"Access denied"}))
	f.Fail("ReconfigureLink", dbus.NewError("org.freedesktop.DBus.Error.Failed", []any{"Link 4 is not managed"}))
	if err := c.Reload(ctx); err == nil || !strings.Contains(err.Error(), "networkd Reload: Access denied") {
		t.Errorf("a refused Reload: %v", err)
	}
	if err := c.ReconfigureLink(ctx, 4); err == nil || !strings.Contains(err.Error(), "networkd ReconfigureLink 4: Link 4 is not managed") {
		t.Errorf("a refused ReconfigureLink: %v", err)
	}

	f.SetLink(5, `{"Index": 5, "AdministrativeState": `)
	if l, err := c.DescribeLink(ctx, 5); err == nil || !strings.Contains(err.Error(), "networkd DescribeLink 5: unexpected end of JSON input") {
		t.Errorf("truncated JSON: %+v, %v", l, err)
	}
	f.SetDescribe("not json")
	if links, err := c.DescribeLinks(ctx); err == nil || !strings.Contains(err.Error(), "networkd Describe: invalid character") {
		t.Errorf("Describe that is not JSON: %+v, %v", links, err)
	}
}

// TestNobodyOwnsNetworkdsName: on a bus where networkd does not run, a call fails with D-Bus's ServiceUnknown at
// once (verify then skips the networkd checks with a note).
func TestNobodyOwnsNetworkdsName(t *testing.T) {
	bus := privateBus(t)
	c, err := networkd.Dial(context.Background(), bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.DescribeLinks(context.Background())
	var dbusErr dbus.Error
	if !errors.As(err, &dbusErr) || dbusErr.Name != "org.freedesktop.DBus.Error.ServiceUnknown" {
		t.Errorf("Describe with no networkd: %v", err)
	}
}

// TestDialHonoursTheSystemBusVariable: an empty address is the system bus, which DBUS_SYSTEM_BUS_ADDRESS names.
func TestDialHonoursTheSystemBusVariable(t *testing.T) {
	f := startFake(t, privateBus(t))
	f.SetLink(3, readTestdata(t, "describe-link-252.json"))
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", f.bus.Address)
	c, err := networkd.Dial(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if l, err := c.DescribeLink(context.Background(), 3); err != nil || l.Name != "eth-a" {
		t.Errorf("DescribeLink through the system bus: %+v, %v", l, err)
	}
}

// TestCallsEndWithTheirContext: a networkd that never answers (stopped) holds a call only as long as its context.
func TestCallsEndWithTheirContext(t *testing.T) {
	f, c := connected(t)
	f.Hold()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Reload(ctx) }()
	waitForCall(t, f, "Reload") // networkd has the call and does not answer
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "networkd Reload") {
			t.Errorf("Reload to a networkd that does not answer: %v", err)
		}
	case <-time.After(hang):
		t.Fatal("Reload did not end with its context")
	}
}

// waitForCall waits until networkd has received call.
func waitForCall(t *testing.T, f *fakeNetworkd, call string) {
	t.Helper()
	for deadline := time.Now().Add(hang); ; time.Sleep(time.Millisecond) {
		for _, c := range f.Calls() {
			if c == call {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("networkd never received %s: %q", call, f.Calls())
		}
	}
}

// TestDialEndsWithItsContext: a bus socket that accepts and never answers holds Dial only as long as its context;
// a socket nobody listens on fails at once.
func TestDialEndsWithItsContext(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "silent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if conn, err := l.Accept(); err == nil {
			accepted <- conn // held open, never written to
		}
	}()
	t.Cleanup(func() {
		select {
		case conn := <-accepted:
			conn.Close()
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		c, err := networkd.Dial(ctx, "unix:path="+sock)
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	var conn net.Conn
	select {
	case conn = <-accepted: // Dial is in the middle of the handshake
		accepted <- conn
	case <-time.After(hang):
		t.Fatal("Dial never connected")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dial to a bus that never answers: %v", err)
		}
	case <-time.After(hang):
		t.Fatal("Dial did not end with its context")
	}

	if _, err := networkd.Dial(context.Background(), "unix:path="+filepath.Join(t.TempDir(), "none.sock")); err == nil || !strings.Contains(err.Error(), "connect to the system bus") {
		t.Errorf("Dial to no socket: %v", err)
	}
}

// TestWatchLinksDeliversAdministrativeStates: each AdministrativeState networkd announces on a link object arrives
// with the ifindex from the escaped path, in order; other properties, other objects and malformed values are
// not link events; stop ends the stream.
func TestWatchLinksDeliversAdministrativeStates(t *testing.T) {
	f, c := connected(t)
	events, stop, err := c.WatchLinks()
	if err != nil {
		t.Fatal(err)
	}
	state := func(s string) map[string]dbus.Variant {
		return map[string]dbus.Variant{"AdministrativeState": dbus.MakeVariant(s)}
	}
	f.EmitLinkState(t, "/org/freedesktop/network1/link/_33", state("configuring"))
	f.EmitLinkState(t, "/org/freedesktop/network1/link/_33", map[string]dbus.Variant{"OperationalState": dbus.MakeVariant("routable")})
	f.EmitLinkState(t, "/org/freedesktop/network1", state("configured")) // the manager, not a link
	f.EmitLinkState(t, "/org/freedesktop/network1/link/_33", map[string]dbus.Variant{"AdministrativeState": dbus.MakeVariant(uint32(7))})
	f.EmitLinkState(t, "/org/freedesktop/network1/link/eth0", state("configured")) // not an escaped index
	f.EmitLinkState(t, "/org/freedesktop/network1/link/_312", state("configured"))
	f.EmitLinkState(t, "/org/freedesktop/network1/link/_33", state("configured"))

	// Signals from one sender arrive in order: the last one closes the list.
	want := []networkd.LinkEvent{{Index: 3, State: "configuring"}, {Index: 12, State: "configured"}, {Index: 3, State: "configured"}}
	var got []networkd.LinkEvent
	for len(got) < len(want) {
		select {
		case ev := <-events:
			got = append(got, ev)
		case <-time.After(hang):
			t.Fatalf("events so far %+v, want %+v", got, want)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}

	stop()
	stop() // a second stop is harmless
	select {
	case ev, open := <-events:
		if open {
			t.Errorf("an event after stop: %+v", ev)
		}
	case <-time.After(hang):
		t.Fatal("the event stream did not end with stop")
	}
}

// TestLinkIndexOfPath undoes systemd's bus-path escaping: a leading digit and every character outside
// [A-Za-z0-9] become _ and two hex digits.
func TestLinkIndexOfPath(t *testing.T) {
	for path, want := range map[dbus.ObjectPath]int{
		"/org/freedesktop/network1/link/_33":    3,
		"/org/freedesktop/network1/link/_312":   12,
		"/org/freedesktop/network1/link/_3123":  123,
		"/org/freedesktop/network1/link/_31_30": 10,
	} {
		if got, ok := networkd.LinkIndexOfPath(path); !ok || got != want {
			t.Errorf("%s: %d %v, want %d", path, got, ok, want)
		}
	}
	for _, path := range []dbus.ObjectPath{
		"/org/freedesktop/network1/link/",
		"/org/freedesktop/network1/link/_3",
		"/org/freedesktop/network1/link/_zz",
		"/org/freedesktop/network1/link/_30",
		"/org/freedesktop/network1/link/eth0",
		"/org/freedesktop/network1/_33",
		"/org/freedesktop/network2/link/_33",
	} {
		if got, ok := networkd.LinkIndexOfPath(path); ok {
			t.Errorf("%s read as link %d", path, got)
		}
	}
}
