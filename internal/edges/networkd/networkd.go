// Package networkd talks to systemd-networkd over D-Bus (org.freedesktop.network1). go-systemd has no wrapper
// for network1, so this calls it through godbus.
package networkd

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
)

const (
	busName      = "org.freedesktop.network1"
	objectPath   = "/org/freedesktop/network1"
	managerIface = busName + ".Manager"
)

// Client is a connection to networkd's bus.
type Client struct {
	conn *dbus.Conn
}

// Dial connects to the system bus at address; an empty address means the system bus, which honours
// DBUS_SYSTEM_BUS_ADDRESS. ctx bounds the connecting only: godbus's WithContext would tie the connection's whole
// life to it.
func Dial(ctx context.Context, address string) (*Client, error) {
	type result struct {
		conn *dbus.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		if address == "" {
			r.conn, r.err = dbus.ConnectSystemBus()
		} else {
			r.conn, r.err = dbus.Connect(address)
		}
		done <- r
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("connect to the system bus: %w", r.err)
		}
		return &Client{conn: r.conn}, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("connect to the system bus: %w", ctx.Err())
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) call(ctx context.Context, method string, args ...any) *dbus.Call {
	return c.conn.Object(busName, objectPath).CallWithContext(ctx, managerIface+"."+method, 0, args...)
}

// Reload makes networkd re-read its files and reconfigure the links whose configuration changed.
func (c *Client) Reload(ctx context.Context) error {
	if err := c.call(ctx, "Reload").Err; err != nil {
		return fmt.Errorf("networkd Reload: %w", err)
	}
	return nil
}

// Link is the part of networkd's link description symroute reads.
type Link struct {
	Index int
	Name  string
	// AdministrativeState is networkd's setup state: pending, initialized, configuring, configured, unmanaged,
	// failed or linger.
	AdministrativeState string
	// NetworkFile is the .network file networkd applied to the link, when it manages it, and NetworkFileDropins
	// the drop-ins it read for it, in the order it applied them.
	NetworkFile        string
	NetworkFileDropins []string
	// OperationalState is networkd's view of the link's carrier and addresses: off, no-carrier, carrier,
	// degraded, routable...
	OperationalState string
}

// DescribeLink returns networkd's description of the link with index ifindex.
func (c *Client) DescribeLink(ctx context.Context, ifindex int) (Link, error) {
	var raw string
	if err := c.call(ctx, "DescribeLink", int32(ifindex)).Store(&raw); err != nil {
		return Link{}, fmt.Errorf("networkd DescribeLink %d: %w", ifindex, err)
	}
	var l Link
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return Link{}, fmt.Errorf("networkd DescribeLink %d: %w", ifindex, err)
	}
	return l, nil
}

// ReconfigureLink makes networkd apply its configuration to the link again, restoring rules and routes that were
// removed behind its back.
func (c *Client) ReconfigureLink(ctx context.Context, ifindex int) error {
	if err := c.call(ctx, "ReconfigureLink", int32(ifindex)).Err; err != nil {
		return fmt.Errorf("networkd ReconfigureLink %d: %w", ifindex, err)
	}
	return nil
}

// LinkEvent is a change of a link's AdministrativeState that networkd announced.
type LinkEvent struct {
	Index int
	State string
}

// linkPathPrefix is where networkd's link objects live; the last element is the ifindex, escaped as systemd
// escapes bus paths ("_33" for 3, "_312" for 12).
const linkPathPrefix = objectPath + "/link/"

// WatchLinks delivers every AdministrativeState change networkd announces (PropertiesChanged on its link
// objects) until stop is called. Subscribe before the Reload whose effect you wait for: networkd announces the
// changes within milliseconds, and a link whose configuration did not change announces nothing.
func (c *Client) WatchLinks() (events <-chan LinkEvent, stop func(), err error) {
	opts := []dbus.MatchOption{
		dbus.WithMatchInterface("org.freedesktop.DBus.Properties"),
		dbus.WithMatchMember("PropertiesChanged"),
		dbus.WithMatchPathNamespace(dbus.ObjectPath(strings.TrimSuffix(linkPathPrefix, "/"))),
	}
	if err := c.conn.AddMatchSignal(opts...); err != nil {
		return nil, nil, fmt.Errorf("subscribe to networkd's link states: %w", err)
	}
	raw := make(chan *dbus.Signal, 256)
	c.conn.Signal(raw)
	out := make(chan LinkEvent, 256)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-done:
				return
			case sig, ok := <-raw:
				if !ok {
					return
				}
				ev, ok := linkEvent(sig)
				if !ok {
					continue
				}
				select {
				case out <- ev:
				case <-done:
					return
				}
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			c.conn.RemoveSignal(raw)
			c.conn.RemoveMatchSignal(opts...)
			close(done)
		})
	}, nil
}

func linkEvent(sig *dbus.Signal) (LinkEvent, bool) {
	index, ok := LinkIndexOfPath(sig.Path)
	if !ok || sig.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" || len(sig.Body) < 2 {
		return LinkEvent{}, false
	}
	changed, ok := sig.Body[1].(map[string]dbus.Variant)
	if !ok {
		return LinkEvent{}, false
	}
	v, ok := changed["AdministrativeState"]
	if !ok {
		return LinkEvent{}, false
	}
	state, ok := v.Value().(string)
	return LinkEvent{Index: index, State: state}, ok
}

// LinkIndexOfPath reads the ifindex from a link object's path, undoing systemd's bus-path escaping.
func LinkIndexOfPath(p dbus.ObjectPath) (int, bool) {
	s, ok := strings.CutPrefix(string(p), linkPathPrefix)
	if !ok || s == "" {
		return 0, false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '_' {
			if i+3 > len(s) {
				return 0, false
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return 0, false
			}
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	n, err := strconv.Atoi(b.String())
	return n, err == nil && n > 0
}

// DescribeLinks returns networkd's description of every link it knows, in one call (Manager.Describe): cheaper
// than DescribeLink per link, which networkd answers one at a time.
func (c *Client) DescribeLinks(ctx context.Context) ([]Link, error) {
	var raw string
	if err := c.call(ctx, "Describe").Store(&raw); err != nil {
		return nil, fmt.Errorf("networkd Describe: %w", err)
	}
	var d struct {
		Interfaces []Link
	}
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		return nil, fmt.Errorf("networkd Describe: %w", err)
	}
	return d.Interfaces, nil
}
