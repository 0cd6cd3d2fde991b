// Command demo shows symroute's main job end to end on a throwaway topology in network namespaces: a LAN client
// that cannot use the host's first-NIC address through a stateful gateway, `symroute apply` on a shipped example
// against the real systemd-networkd, the client succeeding and `symroute verify` passing. It removes everything
// it made. Run it with `make demo` (as root).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/symroute/symroute/internal/nettest"
)

func main() {
	if code, ok := nettest.RunHelper(); ok {
		os.Exit(code) // re-executed as the echo server or client inside a namespace
	}
	bin := flag.String("symroute", "./symroute", "the symroute binary")
	example := flag.String("example", "examples/two-nic.yaml", "the host description to apply")
	flag.Parse()
	os.Exit(run(*bin, *example))
}

func run(bin, example string) (code int) {
	d := &demo{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stop); !ok {
				panic(r)
			}
			code = 1
		}
		d.cleanup()
	}()
	bin, err := filepath.Abs(bin)
	d.check(err)
	body, err := os.ReadFile(example)
	d.check(err)

	nettest.Require(d)
	root, err := os.MkdirTemp("", "symroute-demo-")
	d.check(err)
	d.Cleanup(func() { os.RemoveAll(root) })
	d.check(os.Chmod(root, 0o755))
	desc := filepath.Join(root, "etc/symroute/host.yaml")
	d.check(os.MkdirAll(filepath.Dir(desc), 0o755))
	d.check(os.WriteFile(desc, body, 0o644))

	say("Building the topology: a client on the host's second NIC's LAN, a stateful gateway in front of the first NIC,")
	say("systemd-networkd and a private D-Bus in the host's namespace.")
	site := nettest.NewSite(d, nettest.RunID(d), root, true)

	say("\n1. The client (%s) connects to the host's first-NIC address %s through the gateway:", nettest.ClientIP, nettest.HostA)
	if err := site.ClientReachesA(); err == nil {
		d.Fatalf("it worked before symroute: this topology should have shown the failure")
	} else {
		say("   FAILS: %v", err)
		say("   The host answers straight out of its second NIC; the gateway never sees the reply and drops the flow.")
	}

	say("\n2. symroute apply -c %s", example)
	code, out := site.Run(bin, "apply", "-c", desc, "--root", root)
	indent(out)
	if code != 0 {
		d.Fatalf("symroute apply exited %d", code)
	}

	say("\n3. The same connection:")
	if err := site.ClientReachesA(); err != nil {
		d.Fatalf("still failing after apply: %v", err)
	}
	say("   WORKS: replies from %s now leave by the first NIC.", nettest.HostA)

	say("\n4. symroute verify")
	code, out = site.Run(bin, "verify", "-c", desc, "--root", root)
	indent(out)
	if code != 0 {
		d.Fatalf("symroute verify exited %d", code)
	}
	say("\n5. ip rule, in the host's namespace:")
	indent(site.Host.IP("rule"))
	say("\nRemoving the namespaces and processes the demo made.")
	return 0
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func indent(s string) {
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Println("   " + line)
	}
}

// demo adapts nettest's T to a program: Fatalf prints and unwinds to run, cleanups run in reverse.
type demo struct {
	cleanups []func()
	failed   bool
}

type stop struct{}

func (d *demo) Helper()                 {}
func (d *demo) Logf(f string, a ...any) { fmt.Printf(f+"\n", a...) }
func (d *demo) Errorf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "demo: "+f+"\n", a...)
	d.failed = true
}
func (d *demo) Fatalf(f string, a ...any) { d.Errorf(f, a...); panic(stop{}) }
func (d *demo) Fatal(a ...any)            { d.Fatalf("%s", fmt.Sprint(a...)) }
func (d *demo) Skip(a ...any)             { d.Fatalf("cannot run here: %s", fmt.Sprint(a...)) }
func (d *demo) Skipf(f string, a ...any)  { d.Fatalf("cannot run here: "+f, a...) }
func (d *demo) Cleanup(f func())          { d.cleanups = append(d.cleanups, f) }
func (d *demo) Failed() bool              { return d.failed }

func (d *demo) check(err error) {
	if err != nil {
		d.Fatalf("%v", err)
	}
}

func (d *demo) cleanup() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	d.cleanups = nil
}
