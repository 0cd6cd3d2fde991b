package nettest

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// Forward lets programs inside the namespace reach target, a TCP address of the test process's own namespace (a
// server on the machine's loopback, such as a test's API server), without an address or a link added outside the
// test's namespaces: it listens on 127.0.0.1 inside the namespace (the socket belongs to the namespace's stack,
// wherever the test accepts on it) and copies each connection to and from a connection of its own to target. It
// returns the address to dial inside the namespace. The listener and every connection are closed when the test
// ends.
func (n *Netns) Forward(t T, target string) string {
	t.Helper()
	return n.ForwardAt(t, "127.0.0.1:0", target)
}

// ForwardAt is Forward listening on listen, an address inside the namespace.
func (n *Netns) ForwardAt(t T, listen, target string) string {
	t.Helper()
	l, err := listenIn(n.Name, listen)
	if err != nil {
		t.Fatalf("listen in %s: %v", n.Name, err)
	}
	f := &forwarder{target: target, open: map[net.Conn]struct{}{}}
	f.running.Go(func() { f.accept(l) })
	t.Cleanup(func() {
		l.Close()
		f.closeAll()
		f.running.Wait()
	})
	return l.Addr().String()
}

// listenIn opens a TCP listener on addr in the named namespace. The switch is made on a thread locked for it
// alone, and that thread serves other goroutines again only once it is back in the test's namespace: one left in
// the other namespace ends with its goroutine.
func listenIn(name, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer own.Close()
		there, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer there.Close()
		if err := netns.Set(there); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		l, listenErr := net.Listen("tcp", addr)
		if err := netns.Set(own); err != nil {
			if l != nil {
				l.Close()
			}
			done <- result{err: errors.Join(listenErr, err)} // the thread stays locked and ends with this goroutine
			return
		}
		runtime.UnlockOSThread()
		done <- result{l, listenErr}
	}()
	r := <-done
	return r.l, r.err
}

// forwarder copies connections accepted in a namespace to and from target.
type forwarder struct {
	target  string
	running sync.WaitGroup
	mu      sync.Mutex
	open    map[net.Conn]struct{}
	closed  bool
}

// dialTarget bounds connecting to the target, a server on loopback that answers at once.
const dialTarget = 5 * time.Second

func (f *forwarder) accept(l net.Listener) {
	for {
		in, err := l.Accept()
		if err != nil {
			return // closed at the test's end
		}
		f.running.Go(func() { f.serve(in) })
	}
}

func (f *forwarder) serve(in net.Conn) {
	out, err := net.DialTimeout("tcp", f.target, dialTarget)
	if err != nil {
		in.Close()
		return
	}
	if !f.track(in, out) {
		in.Close()
		out.Close()
		return
	}
	defer f.untrack(in, out)
	// Either side ending ends both: the programs here (HTTP/2 over TLS) never half-close.
	var copying sync.WaitGroup
	for _, pair := range [][2]net.Conn{{out, in}, {in, out}} {
		copying.Go(func() {
			io.Copy(pair[0], pair[1])
			pair[0].Close()
			pair[1].Close()
		})
	}
	copying.Wait()
}

func (f *forwarder) track(conns ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	for _, c := range conns {
		f.open[c] = struct{}{}
	}
	return true
}

func (f *forwarder) untrack(conns ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range conns {
		delete(f.open, c)
	}
}

func (f *forwarder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for c := range f.open {
		c.Close()
	}
}
