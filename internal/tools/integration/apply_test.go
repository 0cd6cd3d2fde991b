package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestApplyFixesAsymmetricReplies: before apply the LAN client cannot use the host's first-NIC address through
// the stateful gateway; after apply it can, verify passes, and a second apply changes nothing (a third, with -q,
// prints its result line alone).
func TestApplyFixesAsymmetricReplies(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	if err := s.Client.Echo(hostB+":"+echoPort, ""); err != nil {
		t.Fatalf("the client cannot even reach the host on its own LAN: %v", err)
	}
	s.expectClient(false, "before apply")

	desc := s.describe("host.yaml", twoNICDescription("loose"))
	out := s.mustSymroute(0, "apply", "-c", desc)
	for _, want := range []string{"create /etc/systemd/network/10-symroute-eth-a.network", "reloaded systemd-networkd", "symroute verify: ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	s.expectClient(true, "after apply")
	s.mustSymroute(0, "verify", "-c", desc)

	before := s.tree("")
	out = s.mustSymroute(0, "apply", "-c", desc)
	if !strings.Contains(out, "no file changed") || strings.Contains(out, "reloaded systemd-networkd") {
		t.Errorf("second apply was not a no-op:\n%s", out)
	}
	after := s.tree("")
	for p := range after {
		if string(after[p]) != string(before[p]) && !strings.HasSuffix(p, "symroute.lock") {
			t.Errorf("second apply rewrote %s", p)
		}
	}
	s.expectClient(true, "after the second apply")

	// With -q, the result line alone.
	out = s.mustSymroute(0, "apply", "-q", "-c", desc)
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "symroute verify: ok") {
		t.Errorf("apply -q printed more than its result line:\n%s", out)
	}
}

// TestApplyUnderStrictRPFilter: with strict rp_filter the request is dropped on arrival before apply; after
// apply the reverse-path lookup follows the source rule and passes.
func TestApplyUnderStrictRPFilter(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	s.Host.Exec("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.eth-a.rp_filter=1", "net.ipv4.conf.eth-b.rp_filter=1")
	s.expectClient(false, "before apply, strict rp_filter")
	desc := s.describe("host.yaml", twoNICDescription("strict"))
	s.mustSymroute(0, "apply", "-c", desc)
	s.expectClient(true, "after apply, strict rp_filter")
	out := s.mustSymroute(0, "verify", "-c", desc, "-o", "json")
	if !strings.Contains(out, `"ok": true`) || !strings.Contains(out, `"sysctls": 2`) || !strings.Contains(out, `"findings": []`) {
		t.Errorf("verify -o json:\n%s", out)
	}
}

// TestDriftIsNamedAndRepaired: a rule deleted by hand and a flushed table make verify exit 1 naming them; apply
// restores both.
func TestDriftIsNamedAndRepaired(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	desc := s.describe("host.yaml", twoNICDescription("loose"))
	s.mustSymroute(0, "apply", "-c", desc)

	s.Host.IP("rule", "del", "pref", "20010", "from", hostA, "table", "1000000")
	s.Host.IP("route", "flush", "table", "1000001")
	textfile := filepath.Join(t.TempDir(), "symroute.prom")
	out := s.mustSymroute(1, "verify", "-c", desc, "--textfile", textfile)
	for _, want := range []string{
		"host.yaml:4:17: drift: interfaces[0].addresses[0]: rule 20010: from 192.168.1.10 lookup 1000000 is missing [rule_missing]",
		"drift: interfaces[1]: table 1000001 (symroute-eth-b) is empty [table_empty]",
		"would leave by eth-b", // the probe shows the asymmetric path is back
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	metrics, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"symroute_verify_success 0", `symroute_verify_findings{kind="rule_missing"} 1`, `symroute_verify_findings{kind="table_empty"} 1`, `symroute_verify_interface_ok{interface="eth-a"} 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	s.expectClient(false, "with the rule deleted")

	out = s.mustSymroute(0, "apply", "-c", desc)
	if !strings.Contains(out, "no file changed") || !strings.Contains(out, "asked networkd to configure eth-a again") || !strings.Contains(out, "asked networkd to configure eth-b again") {
		t.Errorf("apply did not repair through networkd:\n%s", out)
	}
	s.mustSymroute(0, "verify", "-c", desc, "--textfile", textfile)
	if metrics, _ := os.ReadFile(textfile); !strings.Contains(string(metrics), "symroute_verify_success 1") {
		t.Errorf("metrics after repair:\n%s", metrics)
	}
	s.expectClient(true, "after apply repaired the drift")
}

// TestApplyRollsBack: a description that cannot verify (it names a NIC this host lacks) makes apply exit 1 with
// the previous files restored and the previous state verified; traffic keeps working.
func TestApplyRollsBack(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	good := s.describe("host.yaml", twoNICDescription("loose"))
	s.mustSymroute(0, "apply", "-c", good)
	before := s.tree("etc")

	bad := s.describe("typo.yaml", twoNICDescription("loose")+"  - name: eth-c\n    addresses: [10.9.0.1/24]\n    gateway: 10.9.0.254\n")
	// A missing link fails verification at once, so --timeout only bounds the waits for networkd, the
	// rollback's included: generous, so a slow machine cannot fail the rollback.
	out := s.mustSymroute(1, "apply", "-c", bad, "--timeout", "120s")
	for _, want := range []string{"eth-c: no such link", "link eth-c does not exist", "removed /etc/systemd/network/10-symroute-eth-c.network, which the run created", "previous state verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "eth-c: no such link") > strings.Index(out, "rolling back") {
		t.Errorf("the cause (no eth-c) comes after its consequence:\n%s", out)
	}
	after := s.tree("etc")
	delete(before, "symroute/typo.yaml")
	delete(after, "symroute/typo.yaml")
	if len(after) != len(before) {
		t.Errorf("files after rollback: %d, before: %d", len(after), len(before))
	}
	for p, data := range before {
		if string(after[p]) != string(data) {
			t.Errorf("%s differs after rollback", p)
		}
	}
	s.mustSymroute(0, "verify", "-c", good)
	s.expectClient(true, "after the rollback")

	// With --no-rollback the new files stay, and apply still says it failed.
	out = s.mustSymroute(1, "apply", "-c", bad, "--timeout", "120s", "--no-rollback")
	if !strings.Contains(out, "keeping the new state although it failed (--no-rollback)") || strings.Count(out, "sysctl: systemd-sysctl applied") != 1 {
		t.Errorf("--no-rollback output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "etc/systemd/network/10-symroute-eth-c.network")); err != nil {
		t.Errorf("--no-rollback removed the new file: %v", err)
	}
}

// TestFirstApplyRollbackKeepsAHandMadeHost: on a host configured by hand, a first apply that fails is undone to the
// addresses and routes the host had. Removing symroute's new files makes networkd let the links go, and take away
// the addresses and routes it had configured, the host's own included: before the undo put them back, a failed
// first apply left both links without an address and main without a route.
func TestFirstApplyRollbackKeepsAHandMadeHost(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	routes, addrs := s.Host.IP("route", "show", "table", "main"), s.Host.IP("-4", "-o", "addr", "show", "scope", "global")
	bad := s.describe("typo.yaml", twoNICDescription("loose")+"  - name: eth-c\n    addresses: [10.9.0.1/24]\n    gateway: 10.9.0.254\n")
	out := s.mustSymroute(1, "apply", "-c", bad, "--timeout", "120s")
	if !strings.Contains(out, "put back route default via 192.168.1.1 on eth-a in main") {
		t.Errorf("the undo does not say it put main's default route back:\n%s", out)
	}
	if got := s.Host.IP("route", "show", "table", "main"); got != routes {
		t.Errorf("main after the undo:\n%s\nbefore:\n%s\napply said:\n%s", got, routes, out)
	}
	// An address added without a broadcast comes back with the one the kernel computes for it: the netlink
	// library fills it in, and networkd 252 needs it so (see restartHazards).
	noBroadcast := regexp.MustCompile(` brd [0-9.]+`)
	if got := s.Host.IP("-4", "-o", "addr", "show", "scope", "global"); noBroadcast.ReplaceAllString(got, "") != noBroadcast.ReplaceAllString(addrs, "") {
		t.Errorf("addresses after the undo:\n%s\nbefore:\n%s", got, addrs)
	}
	if err := s.Client.Echo(hostB+":"+echoPort, ""); err != nil {
		t.Errorf("after the undo the client cannot reach the host on its own LAN: %v", err)
	}
}
