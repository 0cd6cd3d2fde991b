package nftables

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/symroute/symroute/internal/tools/nettest"
	"github.com/symroute/symroute/internal/tools/testenv"
)

// sample has the shape the generator writes: the connection-mark recipe for one interface, replacing the table
// atomically.
const sample = `table inet symroute
delete table inet symroute
table inet symroute {
	chain prerouting {
		type filter hook prerouting priority dstnat + 10; policy accept;
		iifname "eth1" ct state new ct direction original fib daddr type local ct mark set ct mark and 0xffffcfff or 0x00001000
		iifname "eth1" ct state new ct direction original ct status dnat ct mark set ct mark and 0xffffcfff or 0x00001000
		ct mark and 0x00003000 == 0x00001000 meta mark set meta mark and 0xffffcfff or 0x00001000
	}
	chain output {
		type route hook output priority mangle; policy accept;
		ct direction reply ct mark and 0x00003000 == 0x00001000 meta mark set meta mark and 0xffffcfff or 0x00001000
	}
}
`

// sampleFingerprint is what Read makes of sample (on a little-endian host: a register's bytes are shown in its
// order).
const sampleFingerprint = `table inet symroute flags 0
chain output: type route hook output priority -150 policy accept
rule output: ct{dreg=1 key=direction} cmp{sreg=1 op=eq data={value=0x01}} ct{dreg=1 key=mark} bitwise{sreg=1 dreg=1 len=4 op=bool mask={value=0x00003000} xor={value=0x00000000}} cmp{sreg=1 op=eq data={value=0x00001000}} meta{key=mark dreg=1} bitwise{sreg=1 dreg=1 len=4 op=bool mask={value=0xffffcfff} xor={value=0x00001000}} meta{key=mark sreg=1}
chain prerouting: type filter hook prerouting priority -90 policy accept
rule prerouting: meta{key=iifname dreg=1} cmp{sreg=1 op=eq data={value="eth1"/16}} ct{dreg=1 key=state} bitwise{sreg=1 dreg=1 len=4 op=bool mask={value=0x00000008} xor={value=0x00000000}} cmp{sreg=1 op=neq data={value=0x00000000}} ct{dreg=1 key=direction} cmp{sreg=1 op=eq data={value=0x00}} fib{dreg=1 result=type flags=2} cmp{sreg=1 op=eq data={value=0x00000002}} ct{dreg=1 key=mark} bitwise{sreg=1 dreg=1 len=4 op=bool mask={value=0xffffcfff} xor={value=0x00001000}} ct{sreg=1 key=mark}
rule prerouting: meta{key=iifname dreg=1} cmp{sreg=1 op=eq data={value="eth1"/16}} ct{dreg=1 key=state} bitwise{sreg=1 dreg=1 len=4 op=bool mask={value=0x00000008} xor={value=0x00000000}} cmp{sreg=1 op=neq data={value=0x00000000}} ct{dreg=1 key=direction} cmp{sreg=1 op=eq data={value=0x00}} ct{dreg=1 key=status} bitwise{sreg=1 dreg=1 len=4 op=bool mask={value=0x00000020} xor={value=0x00000000}} cmp{sreg=1 op=neq data={value=0x00000000}} ct{dreg=1 key=mark} bitwise{sreg=1 dreg=1 len=4 op=bool mask={value=0xffffcfff} xor={value=0x00001000}} ct{sreg=1 key=mark}
rule prerouting: ct{dreg=1 key=mark} bitwise{sreg=1 dreg=1 len=4 op=bool mask={value=0x00003000} xor={value=0x00000000}} cmp{sreg=1 op=eq data={value=0x00001000}} meta{key=mark dreg=1} bitwise{sreg=1 dreg=1 len=4 op=bool mask={value=0xffffcfff} xor={value=0x00001000}} meta{key=mark sreg=1}
`

// foreign is what other programs keep in the same namespace: a table of another family, and one of the same
// family with a chain of the same name as symroute's, and a set: none of it may show in symroute's fingerprint.
const foreign = `table ip kubeproxy {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.0.0.0/8 counter masquerade
	}
}
table inet other {
	set addresses {
		type ipv4_addr
		elements = { 10.0.0.1 }
	}
	chain prerouting {
		type filter hook prerouting priority 0; policy accept;
		meta mark 0x1 counter
		ip saddr @addresses counter
	}
}
`

// namespace makes a throwaway network namespace and a Ruleset working in it.
func namespace(t *testing.T) (*Ruleset, *nettest.Netns) {
	t.Helper()
	testenv.Root(t, "to create a network namespace and load nftables into it")
	testenv.Program(t, "ip", "iproute2")
	testenv.Program(t, "nft", "nftables")
	n := nettest.NewNetns(t, nettest.RunID(t), "nft")
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &Ruleset{NetNS: h}, n
}

func write(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(t *testing.T, r *Ruleset, path string) {
	t.Helper()
	if err := r.Load(context.Background(), path); err != nil {
		t.Fatal(err)
	}
}

func fingerprint(t *testing.T, r *Ruleset) string {
	t.Helper()
	table, ok, err := r.Read()
	if err != nil || !ok {
		t.Fatalf("read: ok=%v, %v", ok, err)
	}
	return table.Fingerprint()
}

func absent(t *testing.T, r *Ruleset) {
	t.Helper()
	if table, ok, err := r.Read(); err != nil || ok {
		t.Fatalf("read of a missing table: ok=%v %+v, %v", ok, table, err)
	}
}

// TestLoadReadDelete: Load creates the table, and replaces it with the same; the fingerprint is the same after
// both; Delete removes it; other tables, in the namespace and on the host, are as they were throughout.
func TestLoadReadDelete(t *testing.T) {
	r, n := namespace(t)
	host, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("list the host's tables: %v: %s", err, host)
	}
	absent(t, r)
	if err := r.Delete(); err != nil {
		t.Fatalf("delete of a missing table: %v", err)
	}
	n.Exec("nft", "-f", write(t, "foreign.nft", foreign))
	others := func() string {
		return n.Exec("nft", "list", "table", "ip", "kubeproxy") + n.Exec("nft", "list", "table", "inet", "other")
	}
	before := others()
	path := write(t, "90-symroute.nft", sample)

	load(t, r, path)
	first := fingerprint(t, r)
	if first != sampleFingerprint {
		t.Errorf("fingerprint of the sample:\n%s\nwant:\n%s", first, sampleFingerprint)
	}
	load(t, r, path)
	if again := fingerprint(t, r); again != first {
		t.Errorf("a second load changed the fingerprint:\n%s\nwas:\n%s", again, first)
	}
	if got := n.Exec("nft", "list", "chain", "inet", "symroute", "prerouting"); strings.Count(got, "ct mark set") != 2 {
		t.Errorf("the second load did not replace the table:\n%s", got)
	}
	if after := others(); after != before {
		t.Errorf("Load changed other tables:\n%s\nwas:\n%s", after, before)
	}

	if err := r.Delete(); err != nil {
		t.Fatal(err)
	}
	absent(t, r)
	if err := r.Delete(); err != nil {
		t.Fatalf("a second delete: %v", err)
	}
	if after := others(); after != before {
		t.Errorf("Delete changed other tables:\n%s\nwas:\n%s", after, before)
	}
	if now, err := exec.Command("nft", "list", "tables").CombinedOutput(); err != nil || string(now) != string(host) {
		t.Errorf("the host's tables changed: %s (%v), were %s", now, err, host)
	}
}

// handle returns the handle of the first rule of chain whose listing contains text.
func handle(t *testing.T, n *nettest.Netns, chain, text string) string {
	t.Helper()
	for _, line := range strings.Split(n.Exec("nft", "-a", "list", "chain", "inet", "symroute", chain), "\n") {
		if m := regexp.MustCompile(`# handle (\d+)$`).FindStringSubmatch(line); m != nil && strings.Contains(line, text) {
			return m[1]
		}
	}
	t.Fatalf("no rule with %q in chain %s", text, chain)
	return ""
}

// TestFingerprintChanges: every change to the table gives a fingerprint of its own, and Load puts the table back.
func TestFingerprintChanges(t *testing.T) {
	r, n := namespace(t)
	path := write(t, "90-symroute.nft", sample)
	load(t, r, path)
	want := fingerprint(t, r)
	changes := []struct {
		name   string
		change func()
	}{
		{"another mark", func() {
			n.Exec("nft", "replace", "rule", "inet", "symroute", "prerouting", "handle", handle(t, n, "prerouting", "meta mark set"),
				"ct", "mark", "and", "0x00003000", "==", "0x00001000", "meta", "mark", "set", "meta", "mark", "and", "0xffffcfff", "or", "0x00002000")
		}},
		{"another interface", func() {
			n.Exec("nft", "replace", "rule", "inet", "symroute", "prerouting", "handle", handle(t, n, "prerouting", "status dnat"),
				"iifname", "eth2", "ct", "state", "new", "ct", "direction", "original", "ct", "status", "dnat",
				"ct", "mark", "set", "ct", "mark", "and", "0xffffcfff", "or", "0x00001000")
		}},
		{"a rule added", func() {
			n.Exec("nft", "add", "rule", "inet", "symroute", "output", "meta", "mark", "set", "meta", "mark", "or", "0x00001000")
		}},
		{"a rule removed", func() {
			n.Exec("nft", "delete", "rule", "inet", "symroute", "prerouting", "handle", handle(t, n, "prerouting", "fib daddr"))
		}},
		{"rules reordered", func() {
			h := handle(t, n, "prerouting", "meta mark set")
			n.Exec("nft", "delete", "rule", "inet", "symroute", "prerouting", "handle", h)
			n.Exec("nft", "insert", "rule", "inet", "symroute", "prerouting",
				"ct", "mark", "and", "0x00003000", "==", "0x00001000", "meta", "mark", "set", "meta", "mark", "and", "0xffffcfff", "or", "0x00001000")
		}},
		{"a chain deleted", func() { n.Exec("nft", "flush chain inet symroute output; delete chain inet symroute output") }},
		{"a policy changed", func() { n.Exec("nft", "chain inet symroute output { policy drop; }") }},
		{"a chain added", func() { n.Exec("nft", "add", "chain", "inet", "symroute", "extra") }},
		{"the table dormant", func() { n.Exec("nft", "add table inet symroute { flags dormant; }") }},
	}
	seen := map[string]string{want: "the file"}
	for _, c := range changes {
		c.change()
		got := fingerprint(t, r)
		if other, ok := seen[got]; ok {
			t.Errorf("%s: the fingerprint is that of %s:\n%s", c.name, other, got)
		}
		seen[got] = c.name
		load(t, r, path)
		if got := fingerprint(t, r); got != want {
			t.Errorf("after %s, Load did not restore the table:\n%s", c.name, got)
		}
	}
}

// withState is a table with a counter, a named set and an anonymous one.
const withState = `table inet symroute
delete table inet symroute
table inet symroute {
	set links {
		type ifname
		elements = { "eth1", "eth2" }
	}
	chain prerouting {
		type filter hook prerouting priority dstnat + 10; policy accept;
		iifname @links counter
		iifname { "eth3", "eth4" } ct mark set ct mark or 0x00001000
	}
	chain output {
		type route hook output priority mangle; policy accept;
		counter
	}
}
`

// TestFingerprintState: counters counting do not change the fingerprint, nor do a second load's new anonymous
// set; a set's elements do.
func TestFingerprintState(t *testing.T) {
	r, n := namespace(t)
	path := write(t, "90-symroute.nft", withState)
	load(t, r, path)
	want := fingerprint(t, r)
	for _, line := range []string{`set __set0: `, `element __set0: key={value="eth3"/16}`, `element links: key={value="eth2"/16}`, "rule output: counter\n"} {
		if !strings.Contains(want, line) {
			t.Errorf("no %q in the fingerprint:\n%s", line, want)
		}
	}
	// Packets through the output chain, sent from inside the namespace.
	n.Exec("bash", "-c", "for i in 1 2 3; do echo x > /dev/udp/127.0.0.1/9; done")
	if got := n.Exec("nft", "list", "chain", "inet", "symroute", "output"); !regexp.MustCompile(`counter packets [1-9]`).MatchString(got) {
		t.Fatalf("the counter did not count:\n%s", got)
	}
	if got := fingerprint(t, r); got != want {
		t.Errorf("counting changed the fingerprint:\n%s\nwas:\n%s", got, want)
	}
	load(t, r, path)
	if got := fingerprint(t, r); got != want {
		t.Errorf("a second load changed the fingerprint:\n%s\nwas:\n%s", got, want)
	}
	n.Exec("nft", "add", "element", "inet", "symroute", "links", `{ "eth5" }`)
	if got := fingerprint(t, r); got == want {
		t.Errorf("an element added did not change the fingerprint:\n%s", got)
	}
}

// TestLoadFailureKeepsTable: a file nft cannot parse, and one the kernel refuses, fail with nft's message, and
// leave the table as it was: the delete in the file never happens alone.
func TestLoadFailureKeepsTable(t *testing.T) {
	r, _ := namespace(t)
	load(t, r, write(t, "90-symroute.nft", sample))
	want := fingerprint(t, r)
	for _, c := range []struct{ name, chain, message string }{
		{"syntax", "ct mark sett 0x1", "syntax error"},
		{"refused by the kernel", "", "Operation not supported"}, // a route chain on the prerouting hook
	} {
		hook := "type filter hook prerouting priority 0; policy accept;"
		if c.chain == "" {
			hook = "type route hook prerouting priority 0; policy accept;"
		}
		path := write(t, "bad.nft", "table inet symroute\ndelete table inet symroute\ntable inet symroute {\n\tchain prerouting {\n\t\t"+
			hook+"\n\t\t"+c.chain+"\n\t}\n}\n")
		err := r.Load(context.Background(), path)
		if err == nil || !strings.Contains(err.Error(), c.message) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want nft's %q about %s", c.name, err, c.message, path)
		}
		if got := fingerprint(t, r); got != want {
			t.Errorf("%s: the failed load changed the table:\n%s", c.name, got)
		}
	}
}

// fakeNFT writes a stand-in for nft that runs script.
func fakeNFT(t *testing.T, script string) *Ruleset {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nft")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Ruleset{Binary: path}
}

// TestLoadErrorBounded: nft's standard error is quoted, up to maxStderr bytes, with the exit status.
func TestLoadErrorBounded(t *testing.T) {
	r := fakeNFT(t, `echo "Error: $1 $2 refused" >&2; head -c 100000 /dev/zero | tr '\0' x >&2; exit 3`)
	err := r.Load(context.Background(), "/some/file.nft")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "Error: -f /some/file.nft refused") ||
		!strings.Contains(msg, "more bytes]") || len(msg) > maxStderr+200 {
		t.Errorf("error of %d bytes: %.300s...", len(msg), msg)
	}
}

// TestLoadTimeout: a hung nft is killed at the timeout.
func TestLoadTimeout(t *testing.T) {
	r := fakeNFT(t, "exec sleep 30")
	r.Timeout = 100 * time.Millisecond
	start := time.Now()
	err := r.Load(context.Background(), "/some/file.nft")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the deadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Load returned after %v", d)
	}
}

// TestLoadMissingBinary: a configured nft that is not there is an error, not a fall back to another.
func TestLoadMissingBinary(t *testing.T) {
	r := &Ruleset{Binary: filepath.Join(t.TempDir(), "nft")}
	if err := r.Load(context.Background(), "/some/file.nft"); err == nil {
		t.Error("no error")
	}
}

// TestAvailableNamesWhatIsMissing: without nft, Available says to install nftables before anything is changed.
func TestAvailableNamesWhatIsMissing(t *testing.T) {
	r := &Ruleset{Binary: filepath.Join(t.TempDir(), "nft")}
	if err := r.Available(); err == nil || !strings.Contains(err.Error(), "install nftables") {
		t.Errorf("err %v", err)
	}
}
