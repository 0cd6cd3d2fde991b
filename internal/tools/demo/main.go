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

	"github.com/symroute/symroute/internal/tools/nettest"
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

func run(bin, example string) int {
	d := &nettest.Program{Name: "demo"}
	return d.Run(func() { show(d, bin, example) })
}

func show(d *nettest.Program, bin, example string) {
	bin, err := filepath.Abs(bin)
	d.Check(err)
	body, err := os.ReadFile(example)
	d.Check(err)

	nettest.Require(d)
	root, err := os.MkdirTemp("", "symroute-demo-")
	d.Check(err)
	d.Cleanup(func() { os.RemoveAll(root) })
	d.Check(os.Chmod(root, 0o755))
	desc := filepath.Join(root, "etc/symroute/host.yaml")
	d.Check(os.MkdirAll(filepath.Dir(desc), 0o755))
	d.Check(os.WriteFile(desc, body, 0o644))

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
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func indent(s string) {
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Println("   " + line)
	}
}
