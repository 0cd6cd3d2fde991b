package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/tools/nettest"
)

func calicoDescription(clusterCIDRs ...string) string {
	return nettest.Description("loose", append([]string{"cni: [calico]"}, clusterCIDRs...)...)
}

// TestPodNeedsClusterCIDRs: once "from <host address> lookup <table>" exists, the host's replies to a pod
// follow the table to the external gateway; the cluster_cidrs rules keep them in main.
func TestPodNeedsClusterCIDRs(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	pod := s.addPod()
	podToHost := func() error { return pod.Echo(hostA+":"+echoPort, "") }
	if err := podToHost(); err != nil {
		t.Fatalf("before apply the pod cannot reach the host: %v", err)
	}

	without := s.describe("no-cidrs.yaml", calicoDescription())
	out := s.mustSymroute(0, "apply", "-c", without)
	if !strings.Contains(out, "cluster_cidrs is empty") {
		t.Errorf("apply did not warn about the missing cluster_cidrs:\n%s", out)
	}
	if err := podToHost(); err == nil {
		t.Fatal("without cluster_cidrs the pod still reached the host; the scenario proves nothing")
	}

	with := s.describe("host.yaml", calicoDescription("cluster_cidrs: [10.244.0.0/16, 10.96.0.0/12]"))
	s.mustSymroute(0, "apply", "-c", with)
	if err := podToHost(); err != nil {
		t.Fatalf("with cluster_cidrs the pod cannot reach the host: %v", err)
	}
	s.expectClient(true, "with cluster_cidrs")
}

// TestFelixFlushingItsTablesLeavesSymrouteAlone: a loop doing what Felix does to its RouteTableRanges (flush
// tables 1-250 and delete rules pointing at them) runs throughout; symroute's state and traffic are unaffected.
func TestFelixFlushingItsTablesLeavesSymrouteAlone(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	desc := s.describe("host.yaml", calicoDescription("cluster_cidrs: [10.244.0.0/16]"))
	s.mustSymroute(0, "apply", "-c", desc)

	var batch strings.Builder
	for table := 1; table <= 250; table++ {
		batch.WriteString("route flush table " + strconv.Itoa(table) + "\nrule del table " + strconv.Itoa(table) + "\n")
	}
	batchFile := filepath.Join(t.TempDir(), "felix.batch")
	if err := os.WriteFile(batchFile, []byte(batch.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Host.Background(t, "while :; do ip -force -batch "+batchFile+" >/dev/null 2>&1; sleep 0.05; done")

	// Show the loop bites: a route and rule an admin put in table 1 are gone within moments.
	s.Host.IP("route", "add", "203.0.113.0/24", "via", "192.168.1.1", "table", "1")
	s.Host.IP("rule", "add", "pref", "1000", "from", "198.51.100.0/24", "table", "1")
	deadline := time.Now().Add(30 * time.Second)
	for strings.Contains(s.Host.IP("route", "show", "table", "1"), "203.0.113.0") || strings.Contains(s.Host.IP("rule"), "198.51.100.0") {
		if time.Now().After(deadline) {
			t.Fatal("the flushing loop did not clear table 1")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 5 {
		s.mustSymroute(0, "verify", "-c", desc)
		if err := s.clientReachesA(); err != nil {
			t.Fatalf("round %d with the flusher running: %v", i, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRebootFromFilesAlone: everything torn down and rebuilt, networkd started fresh on the files symroute
// wrote and sysctl.d applied by systemd-sysctl as at boot, with no symroute process: verify passes and the
// client's flow works.
func TestRebootFromFilesAlone(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	var desc string
	t.Run("before", func(t *testing.T) {
		s := buildSite(t, root, true)
		s.Host.Exec("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
		desc = s.describe("host.yaml", twoNICDescription("strict"))
		s.mustSymroute(0, "apply", "-c", desc)
		s.expectClient(true, "before the reboot")
	})
	if t.Failed() {
		return
	}
	t.Run("after", func(t *testing.T) {
		s := buildSite(t, root, false)
		// Boot order: systemd-sysctl applies sysctl.d before the network is up, then networkd configures.
		s.Host.Exec("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
		s.Host.Exec("/lib/systemd/systemd-sysctl", filepath.Join(root, "etc/sysctl.d/90-symroute.conf"))
		s.Networkd.WaitConfigured(t, s.Host, 20*time.Second, "eth-a", "eth-b")
		s.mustSymroute(0, "verify", "-c", desc)
		s.expectClient(true, "after the reboot")
	})
}

// TestForeignRulesSurviveWithTheDropInAndStaleRulesAreCleaned: networkd deletes a CNI's rule when it
// reconfigures a link, unless the ManageForeign*=no drop-in is in force (the test shows both). With the drop-in,
// symroute's own rules that a networkd restart left behind (networkd forgets them) are named by verify and
// deleted by the next apply, and the CNI's rule stays.
//
// The host is configured by networkd from the start: networkd 252 fails with ERANGE when it restarts after
// adopting an address and default route that were added by hand (reproduced without symroute's files).
func TestForeignRulesSurviveWithTheDropInAndStaleRulesAreCleaned(t *testing.T) {
	t.Parallel()
	s := buildSite(t, "", false)
	addCNIRule := func() {
		s.Host.IP("rule", "add", "pref", "9", "fwmark", "0x200/0xf00", "lookup", "2004", "protocol", "static")
	}
	hasCNIRule := func() bool { return strings.Contains(s.Host.IP("rule"), "lookup 2004") }
	withSecondAddress := strings.Replace(twoNICDescription("loose"), "[10.0.0.1/24]", "[10.0.0.1/24, 10.0.0.2/24]", 1)

	// Control: no component declared, no drop-in. A change that reconfigures a link loses Cilium's rule.
	desc := s.describe("host.yaml", twoNICDescription("loose"))
	s.mustSymroute(0, "apply", "-c", desc)
	addCNIRule()
	s.mustSymroute(0, "apply", "-c", s.describe("host.yaml", withSecondAddress))
	if hasCNIRule() {
		t.Fatal("networkd kept the foreign rule without the drop-in; the scenario proves nothing")
	}

	// Declared: symroute writes the drop-in and restarts networkd, through the systemd manager, to read it. The
	// restart comes first, on the files networkd already runs; the new files follow with a reload.
	cilium := func(body string) string {
		return strings.Replace(body, "version: 1\n", "version: 1\ncni: [cilium]\n", 1)
	}
	desc = s.describe("host.yaml", cilium(twoNICDescription("loose")))
	out := s.mustSymroute(0, "apply", "-c", desc)
	restart, reload := strings.Index(out, "restarting systemd-networkd"), strings.Index(out, "reloaded systemd-networkd")
	if !strings.Contains(out, "create /etc/systemd/networkd.conf.d/90-symroute.conf") || restart < 0 || reload < restart {
		t.Errorf("apply did not write the drop-in, restart networkd, then reload it:\n%s", out)
	}
	if n := s.Manager.Count("systemd-networkd.service"); n != 1 {
		t.Errorf("networkd was restarted %d times, want once", n)
	}
	addCNIRule()
	s.mustSymroute(0, "apply", "-c", s.describe("host.yaml", cilium(withSecondAddress)))
	if !hasCNIRule() {
		t.Fatalf("the CNI's rule did not survive a reconfiguration with the drop-in:\n%s", s.Host.IP("rule"))
	}
	s.mustSymroute(0, "verify", "-c", desc)

	// eth-b leaves the description; a config tool rewrites the files and networkd restarts before any apply:
	// networkd no longer knows eth-b's rules as its own and, told to keep foreign rules, keeps them. The record
	// says they are symroute's: verify names them, apply deletes them, and the CNI's rule stays.
	oneNIC := strings.SplitN(cilium(twoNICDescription("loose")), "  - name: eth-b", 2)[0]
	v2 := s.describe("host.yaml", oneNIC)
	s.mustSymroute(0, "generate", "-c", v2)
	s.restartNetworkd()
	s.Networkd.WaitConfigured(t, s.Host, 20*time.Second, "eth-a")
	out = s.mustSymroute(1, "verify", "-c", v2)
	if !strings.Contains(out, "rule 20020: from 10.0.0.1 lookup 1000001 is symroute's but no longer in the plan") {
		t.Errorf("verify did not name the stale rule:\n%s", out)
	}
	out = s.mustSymroute(0, "apply", "-c", v2)
	for _, stale := range []string{"deleted symroute's stale rule 20020: from 10.0.0.1 lookup 1000001", "deleted symroute's stale rule 20020: from 10.0.0.2 lookup 1000001"} {
		if !strings.Contains(out, stale) {
			t.Errorf("apply did not say %q:\n%s", stale, out)
		}
	}
	s.mustSymroute(0, "verify", "-c", v2)
	if !hasCNIRule() {
		t.Errorf("apply removed the CNI's rule:\n%s", s.Host.IP("rule"))
	}
}
