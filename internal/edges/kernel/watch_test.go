package kernel

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// TestWatchChangesSignalsEachKindOfChange: a watch opened in a namespace of its own says nothing while nothing
// changes, and signals once a rule, a route, an address or a link changes there; it ends when its context does.
func TestWatchChangesSignalsEachKindOfChange(t *testing.T) {
	name, ip := emptyNamespace(t, "watch")
	ip("link", "add", "eth-a", "type", "veth", "peer", "name", "peer-a")
	ip("link", "set", "peer-a", "up")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := func() <-chan struct{} {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		here, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer here.Close()
		there, err := netns.GetFromName(name)
		if err != nil {
			t.Fatal(err)
		}
		defer there.Close()
		if err := netns.Set(there); err != nil {
			t.Fatal(err)
		}
		defer netns.Set(here)
		ch, err := WatchChanges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}()

	quiet := func(what string) {
		t.Helper()
		select {
		case <-changes:
			t.Fatalf("a change signalled %s", what)
		case <-time.After(300 * time.Millisecond):
		}
	}
	// Bounds a hang only: the kernel sends the message as the change is made.
	signalled := func(what string) {
		t.Helper()
		select {
		case _, ok := <-changes:
			if !ok {
				t.Fatalf("the watch ended instead of signalling %s", what)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no signal within 5 s after %s", what)
		}
		// A change is a burst of messages: let it end and take its signal, so the next case starts quiet.
		time.Sleep(100 * time.Millisecond)
		select {
		case <-changes:
		default:
		}
	}
	quiet("with nothing changed")
	for _, change := range [][]string{
		{"link", "set", "eth-a", "up"},
		{"addr", "add", "192.168.1.10/24", "dev", "eth-a"},
		{"rule", "add", "pref", "20010", "from", "192.168.1.10", "lookup", "1000"},
		{"route", "add", "default", "via", "192.168.1.1", "table", "1000"},
		{"rule", "del", "pref", "20010"},
		{"-6", "rule", "add", "pref", "20011", "from", "2001:db8::10", "lookup", "1000"},
	} {
		ip(change...)
		signalled("ip " + change[0] + " " + change[1])
	}
	quiet("after the last change")
	cancel()
	select {
	case _, ok := <-changes:
		if ok {
			t.Fatal("a signal, not the end, after the context ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not end with its context")
	}
}
